// Shared between the kernel files of CFipsKernels; not part of the API.
#ifndef FIPS_QGEMM_INTERNAL_H
#define FIPS_QGEMM_INTERNAL_H
#include "fips_qgemm.h"

// The contract forbids fused multiply-add. Builds pass -ffp-contract=off;
// clang also honours the pragma (gcc ignores it, hence the guard).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define QG_INLINE static inline __attribute__((always_inline))
// Register-blocked kernels keep their accumulators in arrays indexed by
// small constant loops; fully unrolled, the arrays become registers.
#define UNROLL _Pragma("GCC unroll 16")

// Tiles are 16 output rows x 32 inputs; a q8 tile is 512 bytes.
#define QG_TILE 512
// Kernels decode up to this many panels at a time into the scratch buffer.
#define QG_PANEL_BLOCK_MAX 4

// One GEMM call, already checked by fips_qgemm.
typedef struct qg_args {
    const int8_t *a;        // [M][Kp]
    const float *as;        // [M]
    const int32_t *gs;      // [M][B]
    int Kp, B;              // padded K, k-blocks
    int m0, m1;
    int format, N;
    const uint8_t *data;
    const float *ws;        // weight scales as packed
    const uint32_t *offsets;
    const uint64_t *masks;
    const float *bias;      // NULL: +0.0f is added instead (the contract)
    float *out;
    size_t ldo;
    uint8_t *scratch;       // 64-byte aligned, QG_PANEL_BLOCK_MAX * B tiles
} qg_args;

// Logical values of tile t (p*B + b) as int8 in the q8 tile order (docs/ARTIFACT.md).
void qg_decode_tile_logical(const qg_args *g, int t, int8_t *dst);
// The same with the format's offset added (u = value + 8 for q4g32, + 4 for
// q3g32, + 2 for q2g32) so x86 kernels can feed them to vpdpbusd/vpmaddubsw as unsigned bytes;
// q8sparse decodes to the plain int8 tile. Not used for q8.
void qg_decode_tile_unsigned(const qg_args *g, int t, uint8_t *dst);
// Offset the unsigned decoding adds (8, 4, 2; 0 for q8sparse).
QG_INLINE int qg_format_offset(int format) {
    return format == FIPS_QFORMAT_Q4G32 ? 8 : format == FIPS_QFORMAT_Q3G32 ? 4 : format == FIPS_QFORMAT_Q2G32 ? 2 : 0;
}
// One scale per output row and k-block (the table's group != 0).
QG_INLINE int qg_is_blockwise(int format) {
    const fips_qformat_traits *f = fips_qformat_traits_of(format);
    return f && f->group_size != 0;
}

// Activation quantisation: the scale of one row (shared by every kernel so
// the division is always the same one).
float qg_row_scale(float amax);

// Kernels. Each computes panels p0 ..< p1 for rows g->m0 ..< g->m1.
void qg_gemm_scalar(const qg_args *g, int p0, int p1);
int qg_quantize_scalar(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                       int8_t *q, float *scales, int32_t *gsum);
#if defined(__x86_64__)
void qg_gemm_avx2(const qg_args *g, int p0, int p1);
void qg_gemm_avx512(const qg_args *g, int p0, int p1);
void qg_quantize_avx2(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                      int8_t *q, float *scales, int32_t *gsum);
void qg_quantize_avx512(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                        int8_t *q, float *scales, int32_t *gsum);
extern int qg_x86_has_vbmi2;
#endif
#if defined(__aarch64__)
void qg_gemm_neon(const qg_args *g, int p0, int p1);
void qg_gemm_neondot(const qg_args *g, int p0, int p1);
void qg_quantize_neon(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                      int8_t *q, float *scales, int32_t *gsum);
#endif
#endif
