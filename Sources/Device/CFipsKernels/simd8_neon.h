// Swift's SIMD8<Float> as two float32x4 halves, for the C that gives the
// bits of FipsKernels' Swift code on aarch64 (activations_neon.c,
// f32gemm_neon.c).
#ifndef FIPS_SIMD8_NEON_H
#define FIPS_SIMD8_NEON_H
#if defined(__aarch64__)
#include <arm_neon.h>

// SIMD8.sum() (the stdlib's, for floating point): -0 + l0 + l1 + ... + l7,
// one addition at a time in lane order. lo holds lanes 0-3, hi lanes 4-7.
static inline float simd8_sum(float32x4_t lo, float32x4_t hi) {
    float s = -0.0f;
    s += vgetq_lane_f32(lo, 0); s += vgetq_lane_f32(lo, 1); s += vgetq_lane_f32(lo, 2); s += vgetq_lane_f32(lo, 3);
    s += vgetq_lane_f32(hi, 0); s += vgetq_lane_f32(hi, 1); s += vgetq_lane_f32(hi, 2); s += vgetq_lane_f32(hi, 3);
    return s;
}
#endif
#endif
