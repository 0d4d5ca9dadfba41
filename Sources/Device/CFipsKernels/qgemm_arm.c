// aarch64 kernels: NEON with SDOT (Armv8.2 dotprod: Cortex-A55/A76/A78,
// Raspberry Pi 5, Orin) and plain Armv8.0 NEON (Cortex-A53/A72, Raspberry
// Pi 3/4). The dotprod code carries a function-level target attribute, so
// the same binary runs on an A72 as long as getauxval said no to ASIMDDP.
//
// Both consume signed logical weights: q8 straight from the packed data,
// q4g32/q3g32/q2g32/q8sparse unpacked into the caller's scratch once per panel
// (amortised over all rows). No offset, so no block-sum correction.
#if defined(__aarch64__)
#include "qgemm_internal.h"
#include "fips_float.h"
#include <arm_neon.h>
#include <string.h>

// A build for a dotprod CPU (-mcpu=cortex-a76) needs no attribute; otherwise
// the SDOT functions get Armv8.2-A+dotprod, a superset of a v8.0/v8.1 build
// (always_inline helpers must have a subset of their caller's features).
#if defined(__ARM_FEATURE_DOTPROD)
#define T_DOT
#else
#define T_DOT __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define NOINLINE __attribute__((noinline))

// ---------------------------------------------------------------------------
// Unpacking to signed logical bytes.

static void decode_q4_tile_neon(const uint8_t *s, int8_t *d) {
    const uint8x16_t lo4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    for (int j = 0; j < 4; j++)
        UNROLL
        for (int h = 0; h < 4; h++) {
            uint8x16_t x = vld1q_u8(s + j * 64 + h * 16);
            vst1q_s8(d + (2 * j) * 64 + h * 16, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(x, lo4)), eight));
            vst1q_s8(d + (2 * j + 1) * 64 + h * 16, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(x, 4)), eight));
        }
}

static void decode_q3_tile_neon(const uint8_t *s, int8_t *d) {
    const uint8x16_t three = vdupq_n_u8(3), four = vdupq_n_u8(4);
    UNROLL
    for (int h = 0; h < 4; h++) {
        uint8x16_t hi = vld1q_u8(s + 128 + h * 16);
        for (int grp = 0; grp < 8; grp++) {
            uint8x16_t lo = vld1q_u8(s + (grp / 4) * 64 + h * 16);
            lo = vandq_u8(vshlq_u8(lo, vdupq_n_s8((int8_t)(-2 * (grp % 4)))), three);
            uint8x16_t set = vtstq_u8(hi, vdupq_n_u8((uint8_t)(1 << grp)));
            uint8x16_t u = vorrq_u8(lo, vandq_u8(set, four));
            vst1q_s8(d + grp * 64 + h * 16, vsubq_s8(vreinterpretq_s8_u8(u), vreinterpretq_s8_u8(four)));
        }
    }
}

static void decode_q2_tile_neon(const uint8_t *s, int8_t *d) {
    const uint8x16_t three = vdupq_n_u8(3);
    const int8x16_t two = vdupq_n_s8(2);
    UNROLL
    for (int h = 0; h < 4; h++)
        for (int grp = 0; grp < 8; grp++) {
            uint8x16_t x = vld1q_u8(s + (grp / 4) * 64 + h * 16);
            x = vandq_u8(vshlq_u8(x, vdupq_n_s8((int8_t)(-2 * (grp % 4)))), three);
            vst1q_s8(d + grp * 64 + h * 16, vsubq_s8(vreinterpretq_s8_u8(x), two));
        }
}

static void expand_sparse_tile(const qg_args *g, int t, int8_t *d) {
    const int8_t *s = (const int8_t *)g->data + g->offsets[t];
    const uint64_t *mk = g->masks + (size_t)t * 8;
    memset(d, 0, QG_TILE);
    for (int wd = 0; wd < 8; wd++)
        for (uint64_t m = mk[wd]; m; m &= m - 1) d[wd * 64 + __builtin_ctzll(m)] = *s++;
}

// One panel into scratch; returns its B tiles.
static const int8_t *panel_weights(const qg_args *g, int p) {
    const int B = g->B;
    if (g->format == FIPS_QFORMAT_Q8) return (const int8_t *)g->data + (size_t)p * B * QG_TILE;
    int8_t *dst = (int8_t *)g->scratch;
    for (int b = 0; b < B; b++) {
        int t = p * B + b;
        int8_t *d = dst + (size_t)b * QG_TILE;
        switch (g->format) {
        case FIPS_QFORMAT_Q4G32: decode_q4_tile_neon(g->data + (size_t)t * 256, d); break;
        case FIPS_QFORMAT_Q3G32: decode_q3_tile_neon(g->data + (size_t)t * 192, d); break;
        case FIPS_QFORMAT_Q2G32: decode_q2_tile_neon(g->data + (size_t)t * 128, d); break;
        default: expand_sparse_tile(g, t, d);
        }
    }
    return dst;
}

// ---------------------------------------------------------------------------
// Shared epilogue pieces: 4 outputs n0 ..< n0+4, `left` of them real.

QG_INLINE float32x4_t load4(const float *p, int left) {
    if (left >= 4) return vld1q_f32(p);
    float t[4] = {0, 0, 0, 0};
    for (int i = 0; i < left; i++) t[i] = p[i];
    return vld1q_f32(t);
}
QG_INLINE void store4(float *p, int left, float32x4_t v) {
    if (left >= 4) { vst1q_f32(p, v); return; }
    float t[4];
    vst1q_f32(t, v);
    for (int i = 0; i < left; i++) p[i] = t[i];
}
QG_INLINE float32x4_t bias4(const qg_args *g, int n0, int left) {
    return g->bias ? load4(g->bias + n0, left) : vdupq_n_f32(0.0f);
}
// q8: y = Float(acc) * (s_w * s_a) + bias
QG_INLINE void store_rows4(const qg_args *g, int m, int n0, int32x4_t acc) {
    int left = g->N - n0;
    if (left <= 0) return;
    float32x4_t t = vmulq_f32(vld1q_f32(g->ws + n0), vdupq_n_f32(g->as[m]));
    float32x4_t y = vmulq_f32(vcvtq_f32_s32(acc), t);
    y = vaddq_f32(y, bias4(g, n0, left));
    store4(g->out + (size_t)m * g->ldo + n0, left, y);
}
// q4/q3: y = f * s_a + bias
QG_INLINE void store_blocks4(const qg_args *g, int m, int n0, float32x4_t f) {
    int left = g->N - n0;
    if (left <= 0) return;
    float32x4_t y = vmulq_f32(f, vdupq_n_f32(g->as[m]));
    y = vaddq_f32(y, bias4(g, n0, left));
    store4(g->out + (size_t)m * g->ldo + n0, left, y);
}

// Both assembly kernels keep 16 int32x4 accumulators in v16-v31 (zeroed on
// entry) and finish a panel in registers with store_rows4's three IEEE
// operations in its order, y = Float(acc) * (ws * as[m]) + bias:
// v0-v3 the panel's 16 weight scales, v4-v7 its 16 biases (zeros for none,
// as store_rows4 adds +0.0), v8 the row's activation scale, v9 ws * as.
// Storing the accumulators and running store_rows4 in C cost about 540
// instructions per four rows of a panel (GCC spills and reloads around the
// tail handling); this is 90.
static const float qg_zero16[16];
#define ACC_ZERO                                                                 \
    "movi v16.4s, #0\n\t" "movi v17.4s, #0\n\t" "movi v18.4s, #0\n\t" "movi v19.4s, #0\n\t" \
    "movi v20.4s, #0\n\t" "movi v21.4s, #0\n\t" "movi v22.4s, #0\n\t" "movi v23.4s, #0\n\t" \
    "movi v24.4s, #0\n\t" "movi v25.4s, #0\n\t" "movi v26.4s, #0\n\t" "movi v27.4s, #0\n\t" \
    "movi v28.4s, #0\n\t" "movi v29.4s, #0\n\t" "movi v30.4s, #0\n\t" "movi v31.4s, #0\n\t"
#define EPI_LOAD                                                                 \
    "ldp q0, q1, [%[ws]]\n\t"   "ldp q2, q3, [%[ws], #32]\n\t"                   \
    "ldp q4, q5, [%[bias]]\n\t" "ldp q6, q7, [%[bias], #32]\n\t"
// Outputs 4q..4q+3 of one row: accumulator vC (int32 lanes) becomes y;
// vQ holds their weight scales, vBIAS their biases.
#define EPI_COLUMN(C, Q, BIAS)                                                   \
    "fmul v9.4s, v" Q ".4s, v8.s[0]\n\t"                                        \
    "scvtf v" C ".4s, v" C ".4s\n\t"                                            \
    "fmul v" C ".4s, v" C ".4s, v9.4s\n\t"                                      \
    "fadd v" C ".4s, v" C ".4s, v" BIAS ".4s\n\t"
// One row's 16 outputs from accumulators vC0..vC3, then the next row.
#define EPI_ROW(C0, C1, C2, C3)                                                  \
    "ldr s8, [%[as]], #4\n\t"                                                   \
    EPI_COLUMN(C0, "0", "4") EPI_COLUMN(C1, "1", "5")                            \
    EPI_COLUMN(C2, "2", "6") EPI_COLUMN(C3, "3", "7")                            \
    "stp q" C0 ", q" C1 ", [%[out]]\n\t"                                         \
    "stp q" C2 ", q" C3 ", [%[out], #32]\n\t"                                    \
    "add %[out], %[out], %[ldo]\n\t"
#define ACC_REGS "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", \
                 "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31"

// Where a call's epilogue writes: the output rows, or for a panel that
// overhangs N a 16-wide buffer the caller copies the real columns from.
typedef struct epi_dest {
    const float *ws, *bias, *as;
    float *out;
    size_t ldo_bytes;
} epi_dest;

// tmp: [rows][16] outputs, then 16 biases (a partial panel's bias is copied
// there: the array ends at N).
QG_INLINE epi_dest epi_dest_of(const qg_args *g, int m, int p, float *tmp, int rows) {
    epi_dest d;
    const int full = 16 * p + 16 <= g->N;
    d.ws = g->ws + 16 * p;                      // padded to whole panels
    d.bias = g->bias ? g->bias + 16 * p : qg_zero16;
    d.as = g->as + m;
    d.out = full ? g->out + (size_t)m * g->ldo + 16 * p : tmp;
    d.ldo_bytes = full ? g->ldo * sizeof(float) : 16 * sizeof(float);
    if (!full && g->bias) {
        float *b = tmp + 16 * rows;
        for (int c = 0; c < 16; c++) b[c] = 16 * p + c < g->N ? g->bias[16 * p + c] : 0.0f;
        d.bias = b;
    }
    return d;
}
// A partial panel: copy columns 16p ..< N of rows m ..< m+R from tmp [R][16].
QG_INLINE void epi_finish(const qg_args *g, int m, int R, int p, const float *tmp) {
    if (16 * p + 16 <= g->N) return;
    int left = g->N - 16 * p;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < left; c++) g->out[(size_t)(m + r) * g->ldo + 16 * p + c] = tmp[16 * r + c];
}

// ---------------------------------------------------------------------------
// SDOT: sdot v.4s, w.16b, a.4b[lane] adds 4 products into each of 4 outputs;
// one k-group of a panel is 4 such registers, and one activation register
// holds 4 groups (the lane picks the group).

#define DOT_GROUP(ACC, R, W, grp, A, L)                                                         \
    do {                                                                                         \
        UNROLL for (int q = 0; q < 4; q++) {                                                     \
            int8x16_t wv = vld1q_s8((W) + (grp) * 64 + q * 16);                                  \
            UNROLL for (int r = 0; r < (R); r++) ACC[r][q] = vdotq_laneq_s32(ACC[r][q], wv, A[r], L); \
        }                                                                                        \
    } while (0)
// A tile for R rows: activation bytes 0..15 of the block (groups 0-3),
// then 16..31 (groups 4-7), so only R activation registers are live.
#define DOT_TILE(ACC, R, W, AR, b)                                                               \
    do {                                                                                         \
        int8x16_t av_[4];                                                                        \
        UNROLL for (int r = 0; r < (R); r++) av_[r] = vld1q_s8(AR[r] + 32 * (b));                \
        DOT_GROUP(ACC, R, W, 0, av_, 0); DOT_GROUP(ACC, R, W, 1, av_, 1);                        \
        DOT_GROUP(ACC, R, W, 2, av_, 2); DOT_GROUP(ACC, R, W, 3, av_, 3);                        \
        UNROLL for (int r = 0; r < (R); r++) av_[r] = vld1q_s8(AR[r] + 32 * (b) + 16);           \
        DOT_GROUP(ACC, R, W, 4, av_, 0); DOT_GROUP(ACC, R, W, 5, av_, 1);                        \
        DOT_GROUP(ACC, R, W, 6, av_, 2); DOT_GROUP(ACC, R, W, 7, av_, 3);                        \
    } while (0)

// SDOT, four rows, in assembly. The C loop of kdot_rows compiles (GCC 12) to
// about 178 instructions per tile for 128 sdot: spills and register moves
// around 16 accumulators, 4 activation and 4 weight registers. Here a tile is
// 142: 4 ldp of activations (a row's 32 bytes), 8 four-register ld1 of
// weights (a group's 64 bytes), 128 sdot, the loop. Sums are exact integers,
// so they equal the C loop's.
// Registers: v0-v3 rows 0-3 inputs 0-15 and v8-v11 inputs 16-31 (16 bytes
// each, the lane picks the group), v4-v7 one group's 16 outputs of weights,
// v16-v31 acc[r][q] = v(16 + 4r + q).
#define KD_ROW(A, C0, C1, C2, C3, L)                                             \
    "sdot " C0 ".4s, v4.16b, " A ".4b[" L "]\n\t"                                \
    "sdot " C1 ".4s, v5.16b, " A ".4b[" L "]\n\t"                                \
    "sdot " C2 ".4s, v6.16b, " A ".4b[" L "]\n\t"                                \
    "sdot " C3 ".4s, v7.16b, " A ".4b[" L "]\n\t"
#define KD_GROUP(A0, A1, A2, A3, L)                                              \
    "ld1 {v4.16b, v5.16b, v6.16b, v7.16b}, [%[w]], #64\n\t"                      \
    KD_ROW(A0, "v16", "v17", "v18", "v19", L)                                    \
    KD_ROW(A1, "v20", "v21", "v22", "v23", L)                                    \
    KD_ROW(A2, "v24", "v25", "v26", "v27", L)                                    \
    KD_ROW(A3, "v28", "v29", "v30", "v31", L)
// One tile: 32 inputs of each row, 8 groups, one per lane of v0-v3 then v8-v11.
#define KD_TILE                                                                  \
    "ldp q0, q8, [%[a0]], #32\n\t"                                               \
    "ldp q1, q9, [%[a1]], #32\n\t"                                               \
    "ldp q2, q10, [%[a2]], #32\n\t"                                              \
    "ldp q3, q11, [%[a3]], #32\n\t"                                              \
    KD_GROUP("v0", "v1", "v2", "v3", "0") KD_GROUP("v0", "v1", "v2", "v3", "1")  \
    KD_GROUP("v0", "v1", "v2", "v3", "2") KD_GROUP("v0", "v1", "v2", "v3", "3")  \
    KD_GROUP("v8", "v9", "v10", "v11", "0") KD_GROUP("v8", "v9", "v10", "v11", "1") \
    KD_GROUP("v8", "v9", "v10", "v11", "2") KD_GROUP("v8", "v9", "v10", "v11", "3")

// All `tiles` tiles of rows a[0..3] against a panel's weights w, written
// to d (outputs of rows m..m+3, panel p).
QG_INLINE T_DOT void kdot_rows4_asm(const int8_t *const a[4], const int8_t *w, int tiles, epi_dest d) {
    const int8_t *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    const float *as = d.as;
    float *out = d.out;
    __asm__ volatile(
        ACC_ZERO
        "1:\n\t"
        KD_TILE
        "subs %w[n], %w[n], #1\n\t"
        "b.ne 1b\n\t"
        EPI_LOAD
        EPI_ROW("16", "17", "18", "19") EPI_ROW("20", "21", "22", "23")
        EPI_ROW("24", "25", "26", "27") EPI_ROW("28", "29", "30", "31")
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [n] "+r"(tiles),
          [as] "+r"(as), [out] "+r"(out)
        : [ws] "r"(d.ws), [bias] "r"(d.bias), [ldo] "r"(d.ldo_bytes)
        : "memory", "cc", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
          ACC_REGS);
}

// Rows m0 ..< m1 (a multiple of 4 of them) of panel p, four at a time in
// assembly; one call per panel, so the per-call setup is paid once.
NOINLINE T_DOT static void kdot_rows4_panel(const qg_args *g, int m0, int m1, const int8_t *w, int p) {
    float tmp[4 * 16 + 16];
    for (int m = m0; m < m1; m += 4) {
        const int8_t *ar[4];
        UNROLL
        for (int r = 0; r < 4; r++) ar[r] = g->a + (size_t)(m + r) * g->Kp;
        kdot_rows4_asm(ar, w, g->B, epi_dest_of(g, m, p, tmp, 4));
        epi_finish(g, m, 4, p, tmp);
    }
}

// The rows left over (fewer than 4), one at a time, in C.
QG_INLINE T_DOT void kdot_rows(const qg_args *g, int m, const int R, const int8_t *w, int p) {
    const int B = g->B, Kp = g->Kp;
    const int8_t *ar[4];
    int32x4_t acc[4][4];
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        UNROLL
        for (int q = 0; q < 4; q++) acc[r][q] = vdupq_n_s32(0);
    }
    for (int b = 0; b < B; b++) {
        const int8_t *wt = w + (size_t)b * QG_TILE;
        DOT_TILE(acc, R, wt, ar, b);
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int q = 0; q < 4; q++) store_rows4(g, m + r, 16 * p + 4 * q, acc[r][q]);
}

QG_INLINE T_DOT void kdot_blocks(const qg_args *g, int m, const int R, const int8_t *w, int p) {
    const int B = g->B, Kp = g->Kp;
    float32x4_t f[4][4];
    const int8_t *ar[4];
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        UNROLL
        for (int q = 0; q < 4; q++) f[r][q] = vdupq_n_f32(0.0f);
    }
    for (int b = 0; b < B; b++) {
        int32x4_t acc[4][4];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int q = 0; q < 4; q++) acc[r][q] = vdupq_n_s32(0);
        const int8_t *wt = w + (size_t)b * QG_TILE;
        DOT_TILE(acc, R, wt, ar, b);
        UNROLL
        for (int q = 0; q < 4; q++) {
            float32x4_t sv = vld1q_f32(g->ws + ((size_t)p * B + b) * 16 + 4 * q);
            UNROLL
            for (int r = 0; r < R; r++) f[r][q] = vaddq_f32(f[r][q], vmulq_f32(vcvtq_f32_s32(acc[r][q]), sv));
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int q = 0; q < 4; q++) store_blocks4(g, m + r, 16 * p + 4 * q, f[r][q]);
}

// 32 q registers: rows 4x16 outputs = 16 accumulators + 8 activation + weights;
// blockwise 2 rows = 8 int + 8 float accumulators.
#define RDOT 4
#define RDOTB 2
NOINLINE T_DOT static void kdot_rows_1(const qg_args *g, int m, const int8_t *w, int p) { kdot_rows(g, m, 1, w, p); }
NOINLINE T_DOT static void kdot_blocks_R(const qg_args *g, int m, const int8_t *w, int p) { kdot_blocks(g, m, RDOTB, w, p); }
NOINLINE T_DOT static void kdot_blocks_1(const qg_args *g, int m, const int8_t *w, int p) { kdot_blocks(g, m, 1, w, p); }

void qg_gemm_neondot(const qg_args *g, int p0, int p1) {
    const int blockwise = qg_is_blockwise(g->format);
    const int R = blockwise ? RDOTB : RDOT;
    for (int p = p0; p < p1; p++) {
        const int8_t *w = panel_weights(g, p);
        int m = g->m0;
        if (blockwise) {
            for (; m + R <= g->m1; m += R) kdot_blocks_R(g, m, w, p);
            for (; m < g->m1; m++) kdot_blocks_1(g, m, w, p);
        } else {
            // B >= 1 (fips_qgemm refuses cols <= 0), which the assembly loop needs.
            const int m4 = m + (g->m1 - m) / RDOT * RDOT;
            if (m4 > m) kdot_rows4_panel(g, m, m4, w, p);
            for (m = m4; m < g->m1; m++) kdot_rows_1(g, m, w, p);
        }
    }
}

// ---------------------------------------------------------------------------
// Armv8.0: smull/smlal multiply 8 weight bytes by the activation group
// repeated twice into int16 lanes (n, k); sadalp folds pairs into int32.
// Two q8 products per int16 lane stay below 2^15 (2·128·127), so q8 folds
// every second group; q4/q3 products are at most 8·127, so a whole tile (8
// groups) stays in int16 and folds once.

QG_INLINE int32x4_t fold_pairs(int32x4_t lo, int32x4_t hi) { return vpaddq_s32(lo, hi); }

// Armv8.0, two q8 rows, in assembly. The C loop of kneon_rows compiles (GCC
// 12, -mcpu=cortex-a72) to 74 instructions per pair of groups, of which 48 do
// the arithmetic: the Cortex-A72 tuning splits ld1r into ldr + dup, and with
// 16 accumulators, 8 weight registers and the temporaries live, 5
// accumulators go to the stack. Here the same sequence (smull + smlal of the
// same two groups, folded by sadalp into the same accumulator, so every sum
// is the same integer) takes 52: 2 ld2r (a row's two groups, each broadcast),
// 2 four-register ld1 (a group's 64 weight bytes), 48 multiply-adds.
// Registers: v0-v3 the two rows' activation groups, v4-v7 group 2gp's weights
// and v12-v15 group 2gp+1's, v8-v11 int16 products, v16-v31 the accumulators
// acc[r][q][half] = v(16 + 8r + 2q + half).
#define KN_PRODUCTS(T, W0, W1, A0, A1)                                           \
    "smull  " T ".8h, " W0 ".8b, " A0 ".8b\n\t"                                  \
    "smlal  " T ".8h, " W1 ".8b, " A1 ".8b\n\t"
#define KN_PRODUCTS_HIGH(T, W0, W1, A0, A1)                                      \
    "smull2 " T ".8h, " W0 ".16b, " A0 ".16b\n\t"                                \
    "smlal2 " T ".8h, " W1 ".16b, " A1 ".16b\n\t"
// 4 outputs (one weight register per group) for both rows: accumulators
// L0/H0 (row 0) and L1/H1 (row 1).
#define KN_COLUMN(W0, W1, L0, H0, L1, H1)                                        \
    KN_PRODUCTS("v8", W0, W1, "v0", "v1") KN_PRODUCTS_HIGH("v9", W0, W1, "v0", "v1")   \
    KN_PRODUCTS("v10", W0, W1, "v2", "v3") KN_PRODUCTS_HIGH("v11", W0, W1, "v2", "v3") \
    "sadalp " L0 ".4s, v8.8h\n\t"                                                \
    "sadalp " H0 ".4s, v9.8h\n\t"                                                \
    "sadalp " L1 ".4s, v10.8h\n\t"                                               \
    "sadalp " H1 ".4s, v11.8h\n\t"
// Groups 2gp and 2gp+1 (8 inputs) of both rows into all 16 outputs.
#define KN_GROUP_PAIR                                                            \
    "ld2r {v0.4s, v1.4s}, [%[a0]], #8\n\t"                                       \
    "ld2r {v2.4s, v3.4s}, [%[a1]], #8\n\t"                                       \
    "ld1 {v4.16b, v5.16b, v6.16b, v7.16b}, [%[w]], #64\n\t"                      \
    "ld1 {v12.16b, v13.16b, v14.16b, v15.16b}, [%[w]], #64\n\t"                  \
    KN_COLUMN("v4", "v12", "v16", "v17", "v24", "v25")                           \
    KN_COLUMN("v5", "v13", "v18", "v19", "v26", "v27")                           \
    KN_COLUMN("v6", "v14", "v20", "v21", "v28", "v29")                           \
    KN_COLUMN("v7", "v15", "v22", "v23", "v30", "v31")

// The pairwise fold of kneon_rows (fold_pairs: addp) of row r's accumulators
// into v(16 + 8r + 2q), q = 0..3.
#define KN_FOLD_ROW(L0, H0, L1, H1, L2, H2, L3, H3)                              \
    "addp v" L0 ".4s, v" L0 ".4s, v" H0 ".4s\n\t"                                \
    "addp v" L1 ".4s, v" L1 ".4s, v" H1 ".4s\n\t"                                \
    "addp v" L2 ".4s, v" L2 ".4s, v" H2 ".4s\n\t"                                \
    "addp v" L3 ".4s, v" L3 ".4s, v" H3 ".4s\n\t"

// All `tiles` tiles of rows a0 and a1 against a panel's weights w, written
// to d (outputs of rows m, m+1, panel p).
QG_INLINE void kneon_rows2_asm(const int8_t *a0, const int8_t *a1, const int8_t *w, int tiles, epi_dest d) {
    const float *as = d.as;
    float *out = d.out;
    __asm__ volatile(
        ACC_ZERO
        "1:\n\t"
        KN_GROUP_PAIR KN_GROUP_PAIR KN_GROUP_PAIR KN_GROUP_PAIR
        "subs %w[n], %w[n], #1\n\t"
        "b.ne 1b\n\t"
        KN_FOLD_ROW("16", "17", "18", "19", "20", "21", "22", "23")
        KN_FOLD_ROW("24", "25", "26", "27", "28", "29", "30", "31")
        EPI_LOAD
        EPI_ROW("16", "18", "20", "22") EPI_ROW("24", "26", "28", "30")
        : [a0] "+r"(a0), [a1] "+r"(a1), [w] "+r"(w), [n] "+r"(tiles), [as] "+r"(as), [out] "+r"(out)
        : [ws] "r"(d.ws), [bias] "r"(d.bias), [ldo] "r"(d.ldo_bytes)
        : "memory", "cc", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
          "v12", "v13", "v14", "v15", ACC_REGS);
}

// Rows m0 ..< m1 (an even number of them) of panel p, two at a time in
// assembly; one call per panel.
NOINLINE static void kneon_rows2_panel(const qg_args *g, int m0, int m1, const int8_t *w, int p) {
    float tmp[2 * 16 + 16];
    for (int m = m0; m < m1; m += 2) {
        const int8_t *a0 = g->a + (size_t)m * g->Kp;
        kneon_rows2_asm(a0, a0 + g->Kp, w, g->B, epi_dest_of(g, m, p, tmp, 2));
        epi_finish(g, m, 2, p, tmp);
    }
}

// The row left over, in C.
QG_INLINE void kneon_rows(const qg_args *g, int m, const int R, const int8_t *w, int p) {
    const int B = g->B, Kp = g->Kp;
    const int8_t *ar[2];
    int32x4_t acc[2][4][2];
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        UNROLL
        for (int q = 0; q < 4; q++) acc[r][q][0] = acc[r][q][1] = vdupq_n_s32(0);
    }
    for (int b = 0; b < B; b++) {
        const int8_t *wt = w + (size_t)b * QG_TILE;
        for (int gp = 0; gp < 4; gp++) {
            int8x16_t ad0[2], ad1[2];
            UNROLL
            for (int r = 0; r < R; r++) {
                int32_t v0, v1;
                memcpy(&v0, ar[r] + 32 * b + 8 * gp, 4);
                memcpy(&v1, ar[r] + 32 * b + 8 * gp + 4, 4);
                ad0[r] = vreinterpretq_s8_s32(vdupq_n_s32(v0));
                ad1[r] = vreinterpretq_s8_s32(vdupq_n_s32(v1));
            }
            UNROLL
            for (int q = 0; q < 4; q++) {
                int8x16_t w0 = vld1q_s8(wt + (2 * gp) * 64 + q * 16);
                int8x16_t w1 = vld1q_s8(wt + (2 * gp + 1) * 64 + q * 16);
                UNROLL
                for (int r = 0; r < R; r++) {
                    int16x8_t lo = vmull_s8(vget_low_s8(w0), vget_low_s8(ad0[r]));
                    lo = vmlal_s8(lo, vget_low_s8(w1), vget_low_s8(ad1[r]));
                    int16x8_t hi = vmull_high_s8(w0, ad0[r]);
                    hi = vmlal_high_s8(hi, w1, ad1[r]);
                    acc[r][q][0] = vpadalq_s16(acc[r][q][0], lo);
                    acc[r][q][1] = vpadalq_s16(acc[r][q][1], hi);
                }
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int q = 0; q < 4; q++) store_rows4(g, m + r, 16 * p + 4 * q, fold_pairs(acc[r][q][0], acc[r][q][1]));
}

QG_INLINE void kneon_blocks(const qg_args *g, int m, const int R, const int8_t *w, int p) {
    const int B = g->B, Kp = g->Kp;
    float32x4_t f[2][4];
    const int8_t *ar[2];
    UNROLL
    for (int r = 0; r < R; r++) {
        ar[r] = g->a + (size_t)(m + r) * Kp;
        UNROLL
        for (int q = 0; q < 4; q++) f[r][q] = vdupq_n_f32(0.0f);
    }
    for (int b = 0; b < B; b++) {
        const int8_t *wt = w + (size_t)b * QG_TILE;
        int16x8_t lo[2][4], hi[2][4];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int q = 0; q < 4; q++) lo[r][q] = hi[r][q] = vdupq_n_s16(0);
        for (int grp = 0; grp < 8; grp++) {
            int8x16_t ad[2];
            UNROLL
            for (int r = 0; r < R; r++) {
                int32_t v;
                memcpy(&v, ar[r] + 32 * b + 4 * grp, 4);
                ad[r] = vreinterpretq_s8_s32(vdupq_n_s32(v));
            }
            UNROLL
            for (int q = 0; q < 4; q++) {
                int8x16_t wv = vld1q_s8(wt + grp * 64 + q * 16);
                UNROLL
                for (int r = 0; r < R; r++) {
                    lo[r][q] = vmlal_s8(lo[r][q], vget_low_s8(wv), vget_low_s8(ad[r]));
                    hi[r][q] = vmlal_high_s8(hi[r][q], wv, ad[r]);
                }
            }
        }
        UNROLL
        for (int q = 0; q < 4; q++) {
            float32x4_t sv = vld1q_f32(g->ws + ((size_t)p * B + b) * 16 + 4 * q);
            UNROLL
            for (int r = 0; r < R; r++) {
                int32x4_t acc = fold_pairs(vpaddlq_s16(lo[r][q]), vpaddlq_s16(hi[r][q]));
                f[r][q] = vaddq_f32(f[r][q], vmulq_f32(vcvtq_f32_s32(acc), sv));
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int q = 0; q < 4; q++) store_blocks4(g, m + r, 16 * p + 4 * q, f[r][q]);
}

// 2 rows: 16 int32 accumulators (q8) or 16 int16 + 8 float (q4/q3).
#define RNEON 2
NOINLINE static void kneon_rows_1(const qg_args *g, int m, const int8_t *w, int p) { kneon_rows(g, m, 1, w, p); }
NOINLINE static void kneon_blocks_R(const qg_args *g, int m, const int8_t *w, int p) { kneon_blocks(g, m, RNEON, w, p); }
NOINLINE static void kneon_blocks_1(const qg_args *g, int m, const int8_t *w, int p) { kneon_blocks(g, m, 1, w, p); }

void qg_gemm_neon(const qg_args *g, int p0, int p1) {
    const int blockwise = qg_is_blockwise(g->format);
    for (int p = p0; p < p1; p++) {
        const int8_t *w = panel_weights(g, p);
        int m = g->m0;
        if (blockwise) {
            for (; m + RNEON <= g->m1; m += RNEON) kneon_blocks_R(g, m, w, p);
            for (; m < g->m1; m++) kneon_blocks_1(g, m, w, p);
        } else {
            // B >= 1 (fips_qgemm refuses cols <= 0), which the assembly loop needs.
            const int m2 = m + (g->m1 - m) / RNEON * RNEON;
            if (m2 > m) kneon_rows2_panel(g, m, m2, w, p);
            for (m = m2; m < g->m1; m++) kneon_rows_1(g, m, w, p);
        }
    }
}

// ---------------------------------------------------------------------------
// Activations: fmaxnm/fminnm clamp (NaN -> -127 like the scalar code) and
// fcvtns (round to nearest, ties to even, independent of FPCR).
// A row's amax runs four accumulators over 16 floats (the maximum does not
// depend on the order; fmaxnm skips NaN as the scalar code does), and a whole
// 32-column block stays in registers from load to store and block sum: GCC
// kept the loop over 8-column groups rolled, storing each group's 8 bytes to
// the stack and reloading them (about 4.7 instructions per element, 78M per
// ViT-S image; now about 2.6).

// 32 floats at src (times pre first when `scaled`: the softmax's 1/sum)
// times inv, clamped and rounded, to qd[0..31]; returns their sum.
QG_INLINE int32_t quantize_block32_pre(const float *src, int scaled, float32x4_t pre, float32x4_t inv, int8_t *qd) {
    const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
    int8x16_t half[2];
    UNROLL
    for (int h = 0; h < 2; h++) {
        int16x8_t s16[2];
        UNROLL
        for (int j = 0; j < 2; j++) {
            const float *p = src + 16 * h + 8 * j;
            float32x4_t x0 = vld1q_f32(p), x1 = vld1q_f32(p + 4);
            if (scaled) {
                x0 = vmulq_f32(x0, pre);
                x1 = vmulq_f32(x1, pre);
            }
            float32x4_t v0 = vminnmq_f32(vmaxnmq_f32(vmulq_f32(x0, inv), lo), hi);
            float32x4_t v1 = vminnmq_f32(vmaxnmq_f32(vmulq_f32(x1, inv), lo), hi);
            s16[j] = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(v0)), vqmovn_s32(vcvtnq_s32_f32(v1)));
        }
        half[h] = vcombine_s8(vqmovn_s16(s16[0]), vqmovn_s16(s16[1]));
        vst1q_s8(qd + 16 * h, half[h]);
    }
    return (int32_t)vaddlvq_s8(half[0]) + (int32_t)vaddlvq_s8(half[1]);
}
QG_INLINE int32_t quantize_block32(const float *src, float32x4_t inv, int8_t *qd) {
    return quantize_block32_pre(src, 0, inv, inv, qd);
}

// Row xr (k floats, each times pre first when `scaled`) quantised with scale
// s into qr [Kp] and its block sums gr [B].
QG_INLINE void quantize_row(const float *xr, int k, int scaled, float pre, float s, int8_t *qr, int32_t *gr) {
    const float32x4_t inv = vdupq_n_f32(1.0f / s), prev = vdupq_n_f32(pre);
    const int B = (k + 31) / 32, full = k / 32;
    for (int b = 0; b < full; b++) gr[b] = quantize_block32_pre(xr + 32 * b, scaled, prev, inv, qr + 32 * b);
    if (full < B) {                      // the last, partial block: zero-padded
        float tmp[32];
        const int valid = k - 32 * full;
        for (int i = 0; i < 32; i++) tmp[i] = i < valid ? (scaled ? xr[32 * full + i] * pre : xr[32 * full + i]) : 0.0f;
        int8_t *qd = qr + 32 * full;
        quantize_block32(tmp, inv, qd);
        for (int i = valid; i < 32; i++) qd[i] = 0;   // padding is 0 even when 0·inv is not
        gr[full] = (int32_t)vaddlvq_s8(vld1q_s8(qd)) + (int32_t)vaddlvq_s8(vld1q_s8(qd + 16));
    }
}

void qg_quantize_neon(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                      int8_t *q, float *scales, int32_t *gsum) {
    const int B = (k + 31) / 32, Kp = B * 32;
    for (int m = 0; m < rows; m++) {
        const float *xr = x + (size_t)m * ldx;
        float s;
        if (static_scale) {
            s = *static_scale;
        } else {
            float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
            int i = 0;
            for (; i + 16 <= k; i += 16) {
                a0 = vmaxnmq_f32(vabsq_f32(vld1q_f32(xr + i)), a0);
                a1 = vmaxnmq_f32(vabsq_f32(vld1q_f32(xr + i + 4)), a1);
                a2 = vmaxnmq_f32(vabsq_f32(vld1q_f32(xr + i + 8)), a2);
                a3 = vmaxnmq_f32(vabsq_f32(vld1q_f32(xr + i + 12)), a3);
            }
            for (; i + 4 <= k; i += 4) a0 = vmaxnmq_f32(vabsq_f32(vld1q_f32(xr + i)), a0);
            float amax = vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(a0, a1), vmaxnmq_f32(a2, a3)));
            for (; i < k; i++) {
                float v = xr[i] < 0.0f ? -xr[i] : xr[i];
                amax = v > amax ? v : amax;
            }
            s = qg_row_scale(amax);
        }
        quantize_row(xr, k, 0, 1.0f, s, q + (size_t)m * Kp, gsum + (size_t)m * B);
        scales[m] = s;
    }
}

// Softmax rows straight to int8: what fips_softmax_rows_neon followed by
// fips_quantize_rows (dynamic scales) writes to q, scales and gsum, without
// the pass that normalises and stores the probabilities or the quantiser's
// pass for their maximum. Rounding is monotonic and 1/sum is positive, so the
// largest probability fl(e_k / sum) is fl(max_k e_k * (1/sum)): the amax the
// quantiser would find. A row whose exponentials or 1/sum are not finite
// (NaN or infinite scores) takes the two-step path.
void fips_softmax_quantize_rows_neon(float *x, size_t ld, int rows, int cols, float scale,
                                     int8_t *q, float *scales, int32_t *gsum) {
    const int B = (cols + 31) / 32, Kp = B * 32;
    for (int m = 0; m < rows; m++) {
        float *row = x + (size_t)m * ld;
        float emax, inv;
        fips_softmax_row_exp(row, cols, scale, &emax, &inv);
        const float amax = emax * inv;
        if (!(emax >= 0.0f && emax <= 3.40282347e+38f && inv <= 3.40282347e+38f && amax <= 3.40282347e+38f)) {
            for (int c = 0; c < cols; c++) row[c] *= inv;
            qg_quantize_neon(row, ld, 1, cols, NULL, q + (size_t)m * Kp, scales + m, gsum + (size_t)m * B);
            continue;
        }
        const float s = qg_row_scale(amax);
        quantize_row(row, cols, 1, inv, s, q + (size_t)m * Kp, gsum + (size_t)m * B);
        scales[m] = s;
    }
}
#endif
