// Float non-linearities and the float GEMM of the ViT forward pass in C, for the CPUs where the
// Swift code compiles poorly (activations_neon.c says why). Each function
// gives the bits of its Swift counterpart in FipsKernels, which stays the
// reference and the code every other architecture runs.
#ifndef FIPS_ACTIVATIONS_H
#define FIPS_ACTIVATIONS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__aarch64__)
// Activations.softmaxRows: each of `rows` rows (row m at x + m*ld, `cols`
// floats) becomes softmax(row * scale), in place.
void fips_softmax_rows_neon(float *x, size_t ld, int rows, int cols, float scale);
// Activations.geluErf: x * 0.5 * (1 + erf(x / sqrt 2)) in place.
void fips_gelu_erf_neon(float *x, size_t count);
// F32Gemm.multiplyTransposed: out[m][n] = sum_k a[m][k] w[n][k] (+ bias[n])
// for M rows, N outputs, K inputs (leading dimensions in floats).
void fips_f32_gemm_nt_neon(const float *a, size_t lda, const float *w, size_t ldw, const float *bias,
                           float *out, size_t ldo, int M, int N, int K);
#endif

#ifdef __cplusplus
}
#endif
#endif
