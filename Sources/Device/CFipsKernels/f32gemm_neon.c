// out = a·wᵀ (+ bias) in float for aarch64, bit for bit F32Gemm.multiplyTransposed
// (FipsKernels, Swift, the reference every other architecture runs): the same
// products summed in the same order, with -ffp-contract=off.
//
// The Swift 4x4 tile keeps 16 SIMD8 accumulators, which on NEON are all 32
// registers; the embedded build spills them and takes about 1.2 instructions
// per multiply-add (70M for the ViT-S patch embedding, 256x384x588). Lanes
// 0-3 and 4-7 of a SIMD8 accumulator never meet until its final sum, so here
// a tile runs over k twice, once per half: 16 float32x4 accumulators and 8
// loaded vectors, no spills, about 0.65 instructions per multiply-add.
#if defined(__aarch64__)
#include "fips_float.h"
#include "simd8_neon.h"
#include <arm_neon.h>

// The tile's arrays are registers only once every loop over them is unrolled
// and the helpers are inlined.
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

// F32Gemm.dot followed by the edge path's `s + bias`: SIMD8 lanes over the
// whole 8-column chunks, their sum, the remaining columns one by one.
static float dot_edge(const float *x, const float *y, int K) {
    float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        lo = vaddq_f32(lo, vmulq_f32(vld1q_f32(x + k), vld1q_f32(y + k)));
        hi = vaddq_f32(hi, vmulq_f32(vld1q_f32(x + k + 4), vld1q_f32(y + k + 4)));
    }
    float s = simd8_sum(lo, hi);
    for (; k < K; k++) s += x[k] * y[k];
    return s;
}

// One half (lanes `off` .. off+3 of every 8-column chunk) of a 4x4 tile's
// accumulators over the K8 whole chunks: c[i][j] for rows a[i], outputs w[j].
INLINE void tile_half(const float *const a[4], const float *const w[4], int K8, int off,
                      float32x4_t c[4][4]) {
    UNROLL for (int i = 0; i < 4; i++)
        UNROLL for (int j = 0; j < 4; j++) c[i][j] = vdupq_n_f32(0.0f);
    for (int k = off; k < K8; k += 8) {
        float32x4_t x[4], y[4];
        UNROLL for (int i = 0; i < 4; i++) x[i] = vld1q_f32(a[i] + k);
        UNROLL for (int j = 0; j < 4; j++) y[j] = vld1q_f32(w[j] + k);
        UNROLL for (int i = 0; i < 4; i++)
            UNROLL for (int j = 0; j < 4; j++) c[i][j] = vaddq_f32(c[i][j], vmulq_f32(x[i], y[j]));
    }
}

// Lane l of c[0..3] as one vector: [c[0][l], c[1][l], c[2][l], c[3][l]].
INLINE void transpose4(const float32x4_t c[4], float32x4_t t[4]) {
    float32x4x2_t p = vtrnq_f32(c[0], c[1]), q = vtrnq_f32(c[2], c[3]);
    t[0] = vcombine_f32(vget_low_f32(p.val[0]), vget_low_f32(q.val[0]));
    t[1] = vcombine_f32(vget_low_f32(p.val[1]), vget_low_f32(q.val[1]));
    t[2] = vcombine_f32(vget_high_f32(p.val[0]), vget_high_f32(q.val[0]));
    t[3] = vcombine_f32(vget_high_f32(p.val[1]), vget_high_f32(q.val[1]));
}

// F32Gemm.tile4x4: rows m..m+3, outputs n..n+3.
static void tile4x4(const float *a, size_t lda, const float *w, size_t ldw, const float *bias,
                    float *out, size_t ldo, int m, int n, int K) {
    const float *ar[4], *wr[4];
    UNROLL for (int i = 0; i < 4; i++) ar[i] = a + (size_t)(m + i) * lda;
    UNROLL for (int j = 0; j < 4; j++) wr[j] = w + (size_t)(n + j) * ldw;
    const int K8 = K / 8 * 8;
    float32x4_t lo[4][4], hi[4][4];
    tile_half(ar, wr, K8, 0, lo);
    tile_half(ar, wr, K8, 4, hi);
    const float32x4_t b = bias ? vld1q_f32(bias + n) : vdupq_n_f32(0.0f);
    UNROLL for (int i = 0; i < 4; i++) {
        // The four outputs' SIMD8 sums side by side: lane 0 first, lane 7 last
        // (-0 + lane 0 is lane 0 exactly).
        float32x4_t tl[4], th[4];
        transpose4(lo[i], tl);
        transpose4(hi[i], th);
        float32x4_t v = tl[0];
        v = vaddq_f32(v, tl[1]); v = vaddq_f32(v, tl[2]); v = vaddq_f32(v, tl[3]);
        v = vaddq_f32(v, th[0]); v = vaddq_f32(v, th[1]); v = vaddq_f32(v, th[2]); v = vaddq_f32(v, th[3]);
        v = vaddq_f32(v, b);
        for (int k = K8; k < K; k++) {
            float wk[4] = {wr[0][k], wr[1][k], wr[2][k], wr[3][k]};
            v = vaddq_f32(v, vmulq_f32(vdupq_n_f32(ar[i][k]), vld1q_f32(wk)));
        }
        vst1q_f32(out + (size_t)(m + i) * ldo + n, v);
    }
}

void fips_f32_gemm_nt_neon(const float *a, size_t lda, const float *w, size_t ldw, const float *bias,
                           float *out, size_t ldo, int M, int N, int K) {
    for (int m = 0; m < M; m += 4) {
        const int mr = M - m < 4 ? M - m : 4;
        for (int n = 0; n < N; n += 4) {
            const int nr = N - n < 4 ? N - n : 4;
            if (mr == 4 && nr == 4) {
                tile4x4(a, lda, w, ldw, bias, out, ldo, m, n, K);
                continue;
            }
            for (int i = 0; i < mr; i++)
                for (int j = 0; j < nr; j++)
                    out[(size_t)(m + i) * ldo + n + j] =
                        dot_edge(a + (size_t)(m + i) * lda, w + (size_t)(n + j) * ldw, K) + (bias ? bias[n + j] : 0.0f);
        }
    }
}
#endif
