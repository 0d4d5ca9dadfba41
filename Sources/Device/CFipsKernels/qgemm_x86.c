// x86-64 kernels: AVX2 (any x86-64-v3 CPU) and AVX-512 VNNI (Ice Lake,
// Sapphire Rapids, Zen 4/5). Function-level target attributes keep them in
// the same binary as the scalar kernel; fips_qgemm only calls them after
// CPUID said yes.
//
// Both work on one panel block (C panels of 16 outputs) at a time and sweep
// all rows through it in blocks of R rows, so the block's weights stay in
// L1/L2 while R*C accumulator registers do the work. q8 is read straight from
// the packed data; q4g32/q3g32/q2g32 are unpacked and q8sparse expanded into the
// caller's scratch once per panel block (amortised over all rows).
#if defined(__x86_64__)
#include "qgemm_internal.h"
#include <immintrin.h>
#include <string.h>

#define T_AVX2 __attribute__((target("avx2")))
#define T_512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))
#define T_VBMI2 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi2")))
#define NOINLINE __attribute__((noinline))

QG_INLINE int32_t load_i32(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }
QG_INLINE int min_i(int a, int b) { return a < b ? a : b; }

// Sum of a row's block sums: the q8 correction Σ(w+128)·a − 128·Σa.
QG_INLINE int32_t row_sum(const qg_args *g, int m) {
    const int32_t *gs = g->gs + (size_t)m * g->B;
    int32_t s = 0;
    for (int b = 0; b < g->B; b++) s += gs[b];
    return s;
}

// ---------------------------------------------------------------------------
// Unpacking q4g32 / q3g32 / q2g32 tiles to unsigned bytes u (AVX2; the AVX-512 kernel
// calls the same code, it is not the bottleneck once amortised over rows).

T_AVX2 static void decode_q4_tile_avx2(const uint8_t *s, uint8_t *d) {
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    for (int j = 0; j < 4; j++)
        UNROLL
        for (int h = 0; h < 2; h++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(s + j * 64 + h * 32));
            _mm256_storeu_si256((__m256i *)(d + (2 * j) * 64 + h * 32), _mm256_and_si256(x, lo4));
            _mm256_storeu_si256((__m256i *)(d + (2 * j + 1) * 64 + h * 32), _mm256_and_si256(_mm256_srli_epi16(x, 4), lo4));
        }
}

T_AVX2 static void decode_q3_tile_avx2(const uint8_t *s, uint8_t *d) {
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    UNROLL
    for (int h = 0; h < 2; h++) {
        __m256i hi = _mm256_loadu_si256((const __m256i *)(s + 128 + h * 32));
        UNROLL
        for (int grp = 0; grp < 8; grp++) {
            __m256i lo = _mm256_loadu_si256((const __m256i *)(s + (grp / 4) * 64 + h * 32));
            lo = _mm256_and_si256(_mm256_srl_epi16(lo, _mm_cvtsi32_si128(2 * (grp % 4))), three);
            __m256i bit = _mm256_set1_epi8((char)(1 << grp));
            __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hi, bit), bit);
            _mm256_storeu_si256((__m256i *)(d + grp * 64 + h * 32), _mm256_or_si256(lo, _mm256_and_si256(set, four)));
        }
    }
}

T_AVX2 static void decode_q2_tile_avx2(const uint8_t *s, uint8_t *d) {
    const __m256i three = _mm256_set1_epi8(3);
    UNROLL
    for (int h = 0; h < 2; h++)
        UNROLL
        for (int grp = 0; grp < 8; grp++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(s + (grp / 4) * 64 + h * 32));
            x = _mm256_and_si256(_mm256_srl_epi16(x, _mm_cvtsi32_si128(2 * (grp % 4))), three);
            _mm256_storeu_si256((__m256i *)(d + grp * 64 + h * 32), x);
        }
}

static void expand_sparse_tile_scalar(const qg_args *g, int t, uint8_t *d) {
    const uint8_t *s = g->data + g->offsets[t];
    const uint64_t *mk = g->masks + (size_t)t * 8;
    memset(d, 0, QG_TILE);
    for (int wd = 0; wd < 8; wd++)
        for (uint64_t m = mk[wd]; m; m &= m - 1) d[wd * 64 + __builtin_ctzll(m)] = *s++;
}

T_VBMI2 static void expand_sparse_tile_vbmi2(const qg_args *g, int t, uint8_t *d) {
    const uint8_t *s = g->data + g->offsets[t];
    const uint64_t *mk = g->masks + (size_t)t * 8;
    for (int wd = 0; wd < 8; wd++) {
        _mm512_storeu_si512(d + wd * 64, _mm512_maskz_expandloadu_epi8(mk[wd], s));
        s += __builtin_popcountll(mk[wd]);
    }
}

// Panels p ..< p+nc of a decoded format into scratch (B tiles per panel).
T_AVX2 static void decode_panels_x86(const qg_args *g, int p, int nc, int vbmi2) {
    const int B = g->B;
    for (int c = 0; c < nc; c++)
        for (int b = 0; b < B; b++) {
            int t = (p + c) * B + b;
            uint8_t *d = g->scratch + ((size_t)c * B + b) * QG_TILE;
            switch (g->format) {
            case FIPS_QFORMAT_Q4G32: decode_q4_tile_avx2(g->data + (size_t)t * 256, d); break;
            case FIPS_QFORMAT_Q3G32: decode_q3_tile_avx2(g->data + (size_t)t * 192, d); break;
            case FIPS_QFORMAT_Q2G32: decode_q2_tile_avx2(g->data + (size_t)t * 128, d); break;
            default:
                if (vbmi2) expand_sparse_tile_vbmi2(g, t, d);
                else expand_sparse_tile_scalar(g, t, d);
            }
        }
}

// Output mask for the 16 columns of panel p (n < N only).
QG_INLINE uint32_t col_mask16(const qg_args *g, int p) {
    int left = g->N - 16 * p;
    return left >= 16 ? 0xFFFFu : ((1u << left) - 1u);
}

// ---------------------------------------------------------------------------
// AVX-512 VNNI. vpdpbusd multiplies unsigned bytes (the weights: q8 xor 0x80
// = w + 128, or the unpacked u = w + offset) by signed bytes (a broadcast
// 4-byte activation group) and adds groups of four into int32 lanes: one
// instruction per k-group and 16 outputs. The offset is taken back out with
// the block sums: Σ(w+o)·a − o·Σa.

// R rows x C panels, whole-row int32 accumulation (q8, q8sparse).
QG_INLINE T_512 void k512_rows(const qg_args *g, int m, const int R, const int C,
                               const uint8_t *const *wp, const int *pc, const int nc) {
    const int B = g->B, Kp = g->Kp;
    const int8_t *ar[8];
    __m512i acc[8][4];
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        __m512i init = _mm512_set1_epi32(-128 * row_sum(g, m + r));
        UNROLL
        for (int c = 0; c < C; c++) acc[r][c] = init;
    }
    for (int b = 0; b < B; b++) {
        UNROLL
        for (int grp = 0; grp < 8; grp++) {
            __m512i wv[4];
            UNROLL
            for (int c = 0; c < C; c++)
                wv[c] = _mm512_xor_si512(_mm512_loadu_si512(wp[c] + (size_t)b * QG_TILE + grp * 64), flip);
            UNROLL
            for (int r = 0; r < R; r++) {
                __m512i av = _mm512_set1_epi32(load_i32(ar[r] + 32 * b + 4 * grp));
                UNROLL
                for (int c = 0; c < C; c++) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], wv[c], av);
            }
        }
    }
    UNROLL
    for (int c = 0; c < nc && c < C; c++) {
        const int n0 = 16 * pc[c];
        const __mmask16 km = (__mmask16)col_mask16(g, pc[c]);
        const __m512 sw = _mm512_loadu_ps(g->ws + n0);     // scales are padded to Np
        const __m512 bv = g->bias ? _mm512_maskz_loadu_ps(km, g->bias + n0) : _mm512_setzero_ps();
        UNROLL
        for (int r = 0; r < R; r++) {
            __m512 t = _mm512_mul_ps(sw, _mm512_set1_ps(g->as[m + r]));
            __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][c]), t);
            y = _mm512_add_ps(y, bv);
            _mm512_mask_storeu_ps(g->out + (size_t)(m + r) * g->ldo + n0, km, y);
        }
    }
}

// R rows x C panels, per-k-block float accumulation (q4g32, q3g32) from
// unpacked unsigned tiles.
QG_INLINE T_512 void k512_blocks(const qg_args *g, int m, const int R, const int C,
                                 const uint8_t *const *wp, const int *pc, const int nc) {
    const int B = g->B, Kp = g->Kp;
    const int o = qg_format_offset(g->format);
    const int8_t *ar[8];
    __m512 f[8][4];
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        UNROLL
        for (int c = 0; c < C; c++) f[r][c] = _mm512_setzero_ps();
    }
    for (int b = 0; b < B; b++) {
        __m512i acc[8][4];
        UNROLL
        for (int r = 0; r < R; r++) {
            __m512i init = _mm512_set1_epi32(-o * g->gs[(size_t)(m + r) * B + b]);
            UNROLL
            for (int c = 0; c < C; c++) acc[r][c] = init;
        }
        UNROLL
        for (int grp = 0; grp < 8; grp++) {
            __m512i wv[4];
            UNROLL
            for (int c = 0; c < C; c++) wv[c] = _mm512_loadu_si512(wp[c] + (size_t)b * QG_TILE + grp * 64);
            UNROLL
            for (int r = 0; r < R; r++) {
                __m512i av = _mm512_set1_epi32(load_i32(ar[r] + 32 * b + 4 * grp));
                UNROLL
                for (int c = 0; c < C; c++) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], wv[c], av);
            }
        }
        UNROLL
        for (int c = 0; c < C; c++) {
            __m512 sv = _mm512_loadu_ps(g->ws + ((size_t)pc[c] * B + b) * 16);
            UNROLL
            for (int r = 0; r < R; r++)
                f[r][c] = _mm512_add_ps(f[r][c], _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][c]), sv));
        }
    }
    UNROLL
    for (int c = 0; c < nc && c < C; c++) {
        const int n0 = 16 * pc[c];
        const __mmask16 km = (__mmask16)col_mask16(g, pc[c]);
        const __m512 bv = g->bias ? _mm512_maskz_loadu_ps(km, g->bias + n0) : _mm512_setzero_ps();
        UNROLL
        for (int r = 0; r < R; r++) {
            __m512 y = _mm512_mul_ps(f[r][c], _mm512_set1_ps(g->as[m + r]));
            y = _mm512_add_ps(y, bv);
            _mm512_mask_storeu_ps(g->out + (size_t)(m + r) * g->ldo + n0, km, y);
        }
    }
}

// Register blocks (zmm budget 32): q8 4x4 = 16 accumulators + 4 weights;
// blockwise 4x2 = 8 int + 8 float accumulators + 2 weights.
#ifndef R512
#define R512 4
#endif
#ifndef C512
#define C512 4
#endif
#ifndef R512B
#define R512B 4
#endif
#ifndef C512B
#define C512B 2
#endif
NOINLINE T_512 static void k512_rows_RxC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k512_rows(g, m, R512, C512, wp, pc, nc); }
NOINLINE T_512 static void k512_rows_1xC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k512_rows(g, m, 1, C512, wp, pc, nc); }
NOINLINE T_512 static void k512_blocks_RxC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k512_blocks(g, m, R512B, C512B, wp, pc, nc); }
NOINLINE T_512 static void k512_blocks_1xC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k512_blocks(g, m, 1, C512B, wp, pc, nc); }

T_512 void qg_gemm_avx512(const qg_args *g, int p0, int p1) {
    const size_t pstride = (size_t)g->B * QG_TILE;
    const int blockwise = qg_is_blockwise(g->format);
    const int C = blockwise ? C512B : C512, R = blockwise ? R512B : R512;
    for (int p = p0; p < p1; p += C) {
        const int nc = min_i(C, p1 - p);
        const uint8_t *base;
        if (g->format == FIPS_QFORMAT_Q8) {
            base = g->data + (size_t)p * pstride;
        } else {
            decode_panels_x86(g, p, nc, qg_x86_has_vbmi2);
            base = g->scratch;
        }
        // A short block repeats its last panel in the unused slots (computed, never stored).
        const uint8_t *wp[4];
        int pc[4];
        UNROLL
        for (int c = 0; c < C; c++) { int cc = min_i(c, nc - 1); wp[c] = base + (size_t)cc * pstride; pc[c] = p + cc; }
        int m = g->m0;
        if (blockwise) {
            for (; m + R <= g->m1; m += R) k512_blocks_RxC(g, m, wp, pc, nc);
            for (; m < g->m1; m++) k512_blocks_1xC(g, m, wp, pc, nc);
        } else {
            for (; m + R <= g->m1; m += R) k512_rows_RxC(g, m, wp, pc, nc);
            for (; m < g->m1; m++) k512_rows_1xC(g, m, wp, pc, nc);
        }
    }
}

T_512 void qg_quantize_avx512(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                              int8_t *q, float *scales, int32_t *gsum) {
    const int B = (k + 31) / 32, Kp = B * 32;
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (int m = 0; m < rows; m++) {
        const float *xr = x + (size_t)m * ldx;
        float s;
        if (static_scale) {
            s = *static_scale;
        } else {
            __m512 amax = _mm512_setzero_ps();
            for (int i = 0; i < k; i += 16) {
                __mmask16 km = (__mmask16)(k - i >= 16 ? 0xFFFF : (1u << (k - i)) - 1);
                __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(km, xr + i));
                amax = _mm512_max_ps(v, amax);      // maxps returns the 2nd operand on NaN: NaN ignored
            }
            s = qg_row_scale(_mm512_reduce_max_ps(amax));
        }
        const __m512 inv = _mm512_set1_ps(1.0f / s);
        int8_t *qr = q + (size_t)m * Kp;
        for (int b = 0; b < B; b++) {
            __m512i sum = _mm512_setzero_si512();
            UNROLL
            for (int h = 0; h < 2; h++) {
                int i = 32 * b + 16 * h;
                __mmask16 km = (__mmask16)(k - i >= 16 ? 0xFFFF : k - i <= 0 ? 0 : (1u << (k - i)) - 1);
                __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(km, xr + i), inv);
                v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                __m512i iv = _mm512_maskz_mov_epi32(km, _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                _mm_storeu_si128((__m128i *)(qr + i), _mm512_cvtepi32_epi8(iv));
                sum = _mm512_add_epi32(sum, iv);
            }
            gsum[(size_t)m * B + b] = _mm512_reduce_add_epi32(sum);
        }
        scales[m] = s;
    }
}

// ---------------------------------------------------------------------------
// AVX2 without VNNI. q8: vpmaddubsw(|w|, sign(a, w)) is exact (each int16 is
// at most 2·128·127 < 2^15) and keeps the lanes in output order; vpmaddwd by
// ones widens to int32. q4/q3: u·a pairs are at most 2·15·127, so a whole
// tile (8 groups) adds up in int16 before one vpmaddwd. Two ymm per panel.

QG_INLINE T_AVX2 __m256 loadu_ps_masked8(const float *p, int left) {
    if (left >= 8) return _mm256_loadu_ps(p);
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(left), idx));
}
QG_INLINE T_AVX2 void store_ps_masked8(float *p, int left, __m256 v) {
    if (left >= 8) { _mm256_storeu_ps(p, v); return; }
    if (left <= 0) return;
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(left), idx), v);
}

QG_INLINE T_AVX2 void k256_rows(const qg_args *g, int m, const int R, const int C,
                                const uint8_t *const *wp, const int *pc, const int nc) {
    const int B = g->B, Kp = g->Kp;
    const int8_t *ar[8];
    __m256i acc[8][2][2];
    const __m256i ones = _mm256_set1_epi16(1);
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        UNROLL
        for (int c = 0; c < C; c++) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_si256();
    }
    for (int b = 0; b < B; b++) {
        UNROLL
        for (int grp = 0; grp < 8; grp++) {
            __m256i w[2][2], aw[2][2];
            UNROLL
            for (int c = 0; c < C; c++)
                UNROLL
                for (int h = 0; h < 2; h++) {
                    w[c][h] = _mm256_loadu_si256((const __m256i *)(wp[c] + (size_t)b * QG_TILE + grp * 64 + h * 32));
                    aw[c][h] = _mm256_abs_epi8(w[c][h]);
                }
            UNROLL
            for (int r = 0; r < R; r++) {
                __m256i av = _mm256_set1_epi32(load_i32(ar[r] + 32 * b + 4 * grp));
                UNROLL
                for (int c = 0; c < C; c++)
                    UNROLL
                    for (int h = 0; h < 2; h++) {
                        __m256i pr = _mm256_maddubs_epi16(aw[c][h], _mm256_sign_epi8(av, w[c][h]));
                        acc[r][c][h] = _mm256_add_epi32(acc[r][c][h], _mm256_madd_epi16(pr, ones));
                    }
            }
        }
    }
    UNROLL
    for (int c = 0; c < nc && c < C; c++)
        UNROLL
        for (int h = 0; h < 2; h++) {
            const int n0 = 16 * pc[c] + 8 * h, left = g->N - n0;
            if (left <= 0) continue;
            const __m256 sw = _mm256_loadu_ps(g->ws + n0);
            const __m256 bv = g->bias ? loadu_ps_masked8(g->bias + n0, left) : _mm256_setzero_ps();
            UNROLL
            for (int r = 0; r < R; r++) {
                __m256 t = _mm256_mul_ps(sw, _mm256_set1_ps(g->as[m + r]));
                __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][c][h]), t);
                y = _mm256_add_ps(y, bv);
                store_ps_masked8(g->out + (size_t)(m + r) * g->ldo + n0, left, y);
            }
        }
}

QG_INLINE T_AVX2 void k256_blocks(const qg_args *g, int m, const int R, const int C,
                                  const uint8_t *const *wp, const int *pc, const int nc) {
    const int B = g->B, Kp = g->Kp;
    const int o = qg_format_offset(g->format);
    const int8_t *ar[8];
    __m256 f[8][2][2];
    const __m256i ones = _mm256_set1_epi16(1);
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        UNROLL
        for (int c = 0; c < C; c++) f[r][c][0] = f[r][c][1] = _mm256_setzero_ps();
    }
    for (int b = 0; b < B; b++) {
        __m256i acc[4][2][2];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int c = 0; c < C; c++) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_si256();
        UNROLL
        for (int grp = 0; grp < 8; grp++) {
            __m256i w[2][2];
            UNROLL
            for (int c = 0; c < C; c++)
                UNROLL
                for (int h = 0; h < 2; h++)
                    w[c][h] = _mm256_loadu_si256((const __m256i *)(wp[c] + (size_t)b * QG_TILE + grp * 64 + h * 32));
            UNROLL
            for (int r = 0; r < R; r++) {
                __m256i av = _mm256_set1_epi32(load_i32(ar[r] + 32 * b + 4 * grp));
                UNROLL
                for (int c = 0; c < C; c++)
                    UNROLL
                    for (int h = 0; h < 2; h++)
                        acc[r][c][h] = _mm256_add_epi16(acc[r][c][h], _mm256_maddubs_epi16(w[c][h], av));
            }
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            const __m256i corr = _mm256_set1_epi32(-o * g->gs[(size_t)(m + r) * B + b]);
            UNROLL
            for (int c = 0; c < C; c++)
                UNROLL
                for (int h = 0; h < 2; h++) {
                    __m256 sv = _mm256_loadu_ps(g->ws + ((size_t)pc[c] * B + b) * 16 + 8 * h);
                    __m256i i32 = _mm256_add_epi32(_mm256_madd_epi16(acc[r][c][h], ones), corr);
                    f[r][c][h] = _mm256_add_ps(f[r][c][h], _mm256_mul_ps(_mm256_cvtepi32_ps(i32), sv));
                }
        }
    }
    UNROLL
    for (int c = 0; c < nc && c < C; c++)
        UNROLL
        for (int h = 0; h < 2; h++) {
            const int n0 = 16 * pc[c] + 8 * h, left = g->N - n0;
            if (left <= 0) continue;
            const __m256 bv = g->bias ? loadu_ps_masked8(g->bias + n0, left) : _mm256_setzero_ps();
            UNROLL
            for (int r = 0; r < R; r++) {
                __m256 y = _mm256_mul_ps(f[r][c][h], _mm256_set1_ps(g->as[m + r]));
                y = _mm256_add_ps(y, bv);
                store_ps_masked8(g->out + (size_t)(m + r) * g->ldo + n0, left, y);
            }
        }
}

// ymm budget 16: q8 4x1 = 8 accumulators + 2 weights + 2 |weights|;
// blockwise 2x1 = 4 int16 + 4 float accumulators + 2 weights.
#ifndef R256
#define R256 4
#endif
#ifndef C256
#define C256 1
#endif
#ifndef R256B
#define R256B 2
#endif
#ifndef C256B
#define C256B 1
#endif
NOINLINE T_AVX2 static void k256_rows_RxC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k256_rows(g, m, R256, C256, wp, pc, nc); }
NOINLINE T_AVX2 static void k256_rows_1xC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k256_rows(g, m, 1, C256, wp, pc, nc); }
NOINLINE T_AVX2 static void k256_blocks_RxC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k256_blocks(g, m, R256B, C256B, wp, pc, nc); }
NOINLINE T_AVX2 static void k256_blocks_1xC(const qg_args *g, int m, const uint8_t *const *wp, const int *pc, int nc) { k256_blocks(g, m, 1, C256B, wp, pc, nc); }

T_AVX2 void qg_gemm_avx2(const qg_args *g, int p0, int p1) {
    const size_t pstride = (size_t)g->B * QG_TILE;
    const int blockwise = qg_is_blockwise(g->format);
    const int C = blockwise ? C256B : C256, R = blockwise ? R256B : R256;
    for (int p = p0; p < p1; p += C) {
        const int nc = min_i(C, p1 - p);
        const uint8_t *base;
        if (g->format == FIPS_QFORMAT_Q8) {
            base = g->data + (size_t)p * pstride;
        } else {
            decode_panels_x86(g, p, nc, 0);
            base = g->scratch;
        }
        const uint8_t *wp[2];
        int pc[2];
        UNROLL
        for (int c = 0; c < C; c++) { int cc = min_i(c, nc - 1); wp[c] = base + (size_t)cc * pstride; pc[c] = p + cc; }
        int m = g->m0;
        if (blockwise) {
            for (; m + R <= g->m1; m += R) k256_blocks_RxC(g, m, wp, pc, nc);
            for (; m < g->m1; m++) k256_blocks_1xC(g, m, wp, pc, nc);
        } else {
            for (; m + R <= g->m1; m += R) k256_rows_RxC(g, m, wp, pc, nc);
            for (; m < g->m1; m++) k256_rows_1xC(g, m, wp, pc, nc);
        }
    }
}

T_AVX2 void qg_quantize_avx2(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                             int8_t *q, float *scales, int32_t *gsum) {
    const int B = (k + 31) / 32, Kp = B * 32;
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int m = 0; m < rows; m++) {
        const float *xr = x + (size_t)m * ldx;
        float s;
        if (static_scale) {
            s = *static_scale;
        } else {
            __m256 amax = _mm256_setzero_ps();
            for (int i = 0; i < k; i += 8) {
                __m256 v = _mm256_and_ps(loadu_ps_masked8(xr + i, k - i), absmask);
                amax = _mm256_max_ps(v, amax);      // NaN ignored, as in the scalar code
            }
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
            s = qg_row_scale(_mm_cvtss_f32(m4));
        }
        const __m256 inv = _mm256_set1_ps(1.0f / s);
        int8_t *qr = q + (size_t)m * Kp;
        for (int b = 0; b < B; b++) {
            __m256i iv[4];
            UNROLL
            for (int h = 0; h < 4; h++) {
                int i = 32 * b + 8 * h, left = k - i;
                if (left <= 0) { iv[h] = _mm256_setzero_si256(); continue; }
                __m256 v = _mm256_mul_ps(loadu_ps_masked8(xr + i, left), inv);
                v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                iv[h] = _mm256_cvttps_epi32(v);
                if (left < 8)
                    iv[h] = _mm256_and_si256(iv[h], _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
            }
            __m256i p16 = _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
            _mm256_storeu_si256((__m256i *)(qr + 32 * b), _mm256_permutevar8x32_epi32(p16, order));
            __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            gsum[(size_t)m * B + b] = _mm_cvtsi128_si32(s4);
        }
        scales[m] = s;
    }
}
#endif
