// Float work of the ViT forward pass in C. The _neon functions are for the
// CPU where the Swift code compiles poorly (activations_neon.c and
// f32gemm_neon.c say why); each gives the bits of its Swift counterpart in
// FipsKernels, which stays the reference and the code every other
// architecture runs.
#ifndef FIPS_FLOAT_H
#define FIPS_FLOAT_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (attention's
// Vᵀ). Every architecture; NEON 4x4 blocks on aarch64.
void fips_transpose_f32(const float *src, size_t lds, int rows, int cols, float *dst, size_t ldd);

#if defined(__aarch64__)
// Activations.softmaxRows: each of `rows` rows (row m at x + m*ld, `cols`
// floats) becomes softmax(row * scale), in place.
void fips_softmax_rows_neon(float *x, size_t ld, int rows, int cols, float scale);
// Its first passes on one row: row[k] = e^((row[k] - max) * scale), not yet
// normalised; *emax = max_k of them, *inv = 1 / their sum.
void fips_softmax_row_exp(float *row, int cols, float scale, float *emax, float *inv);
// fips_softmax_rows_neon then fips_quantize_rows(dynamic scales) in one go:
// q [rows][Kp], scales [rows], gsum [rows][Kp/32] as the quantiser writes
// them (every kernel's bits); x is left holding the unnormalised exponentials.
void fips_softmax_quantize_rows_neon(float *x, size_t ld, int rows, int cols, float scale,
                                     int8_t *q, float *scales, int32_t *gsum);
// Activations.geluErf: x * 0.5 * (1 + erf(x / sqrt 2)) in place.
void fips_gelu_erf_neon(float *x, size_t count);
// Activations.layerNorm: each row of x (D floats) normalised, times weight
// plus bias, into out.
void fips_layer_norm_neon(const float *x, size_t ldx, int rows, int D, const float *weight, const float *bias,
                          float eps, float *out, size_t ldo);
// F32Gemm.multiplyTransposed: out[m][n] = sum_k a[m][k] w[n][k] (+ bias[n])
// for M rows, N outputs, K inputs (leading dimensions in floats).
void fips_f32_gemm_nt_neon(const float *a, size_t lda, const float *w, size_t ldw, const float *bias,
                           float *out, size_t ldo, int M, int N, int K);
#endif

#ifdef __cplusplus
}
#endif
#endif
