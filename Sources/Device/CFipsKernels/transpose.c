// A float matrix transposed (attention's V into Vᵀ, so that P·V is a
// row-times-row GEMM). Exact by construction: every architecture runs this;
// aarch64 moves 4x4 blocks through registers (1 instruction per element
// instead of the Swift loop's 11, 13M per ViT-S image).
#include "fips_float.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

void fips_transpose_f32(const float *src, size_t lds, int rows, int cols, float *dst, size_t ldd) {
    int r = 0;
#if defined(__aarch64__)
    for (; r + 4 <= rows; r += 4) {
        int c = 0;
        for (; c + 4 <= cols; c += 4) {
            float32x4_t a = vld1q_f32(src + (size_t)r * lds + c), b = vld1q_f32(src + (size_t)(r + 1) * lds + c);
            float32x4_t e = vld1q_f32(src + (size_t)(r + 2) * lds + c), f = vld1q_f32(src + (size_t)(r + 3) * lds + c);
            float32x4x2_t p = vtrnq_f32(a, b), q = vtrnq_f32(e, f);
            vst1q_f32(dst + (size_t)c * ldd + r, vcombine_f32(vget_low_f32(p.val[0]), vget_low_f32(q.val[0])));
            vst1q_f32(dst + (size_t)(c + 1) * ldd + r, vcombine_f32(vget_low_f32(p.val[1]), vget_low_f32(q.val[1])));
            vst1q_f32(dst + (size_t)(c + 2) * ldd + r, vcombine_f32(vget_high_f32(p.val[0]), vget_high_f32(q.val[0])));
            vst1q_f32(dst + (size_t)(c + 3) * ldd + r, vcombine_f32(vget_high_f32(p.val[1]), vget_high_f32(q.val[1])));
        }
        for (; c < cols; c++)
            for (int i = 0; i < 4; i++) dst[(size_t)c * ldd + r + i] = src[(size_t)(r + i) * lds + c];
    }
#endif
    for (; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}
