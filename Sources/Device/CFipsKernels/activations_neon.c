// Softmax rows, erf-GELU and LayerNorm for aarch64, bit for bit the arithmetic of
// FipsKernels' Activations.softmaxRows / geluErf / layerNorm and FastMath.exp / erf (the
// Swift SIMD8 code, which every other architecture runs and which is the
// reference): the same IEEE single operations on the same values in the same
// order, lane by lane, with -ffp-contract=off (no fused multiply-add).
//
// Why C: the Swift code compiles for the embedded target to an out-of-line
// FastMath.exp that rebuilds its 13 constants with mov/movk/dup on every call
// and clamps with fcmgt + cmlt + bit: 12 instructions per exponential, 4.8M
// of them per ViT-S image. Here the constants stay in registers and the clamp
// is fmax/fmin.
//
// Constants are given as the bit patterns the Swift literals round to
// (read from the aarch64 build), so no decimal-to-float rounding can differ.
#if defined(__aarch64__)
#include "fips_float.h"
#include "simd8_neon.h"
#include <arm_neon.h>
#include <string.h>

static inline float f32_of_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
#define K(bits) vdupq_n_f32(f32_of_bits(bits))

// e^x, FastMath.exp: Cody-Waite reduction x = n ln2 + r, degree-6 polynomial,
// 2^n in the exponent bits; inputs below -87 give 0.
typedef struct exp_consts {
    float32x4_t lo, hi, log2e, shifter, ln2_hi, ln2_lo, c0, c1, c2, c3, c4, c5, one;
} exp_consts;

static inline exp_consts exp_consts_make(void) {
    exp_consts c;
    c.lo = K(0xc2ae0000);        // -87
    c.hi = K(0x42b00000);        // 88
    c.log2e = K(0x3fb8aa3b);     // 1.44269504088896341
    c.shifter = K(0x4b400000);   // 1.5 * 2^23
    c.ln2_hi = K(0x3f318000);    // 0.693359375
    c.ln2_lo = K(0xb95e8083);    // -2.12194440e-4
    c.c0 = K(0x39506967);        // 1.9875691500e-4
    c.c1 = K(0x3ab743ce);        // 1.3981999507e-3
    c.c2 = K(0x3c088908);        // 8.3334519073e-3
    c.c3 = K(0x3d2aa9c1);        // 4.1665795894e-2
    c.c4 = K(0x3e2aaaaa);        // 1.6666665459e-1
    c.c5 = K(0x3f000000);        // 5.0000001201e-1 (rounds to 0.5)
    c.one = vdupq_n_f32(1.0f);
    return c;
}

static inline float32x4_t exp4(const exp_consts *c, float32x4_t a) {
    // FastMath.clamp selects lo where a < lo and hi where a > hi, keeping a
    // NaN; fmax/fmin (not fmaxnm) also give NaN for NaN.
    float32x4_t x = vminq_f32(vmaxq_f32(a, c->lo), c->hi);
    float32x4_t t = vaddq_f32(vmulq_f32(x, c->log2e), c->shifter);
    float32x4_t n = vsubq_f32(t, c->shifter);
    float32x4_t r = vsubq_f32(x, vmulq_f32(n, c->ln2_hi));
    r = vsubq_f32(r, vmulq_f32(n, c->ln2_lo));
    float32x4_t p = vaddq_f32(vmulq_f32(r, c->c0), c->c1);
    p = vaddq_f32(vmulq_f32(p, r), c->c2);
    p = vaddq_f32(vmulq_f32(p, r), c->c3);
    p = vaddq_f32(vmulq_f32(p, r), c->c4);
    p = vaddq_f32(vmulq_f32(p, r), c->c5);
    p = vaddq_f32(vaddq_f32(vmulq_f32(p, vmulq_f32(r, r)), r), c->one);
    int32x4_t ni = vsubq_s32(vreinterpretq_s32_f32(t), vdupq_n_s32(0x4B400000));
    float32x4_t scale = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(ni, vdupq_n_s32(127)), 23));
    float32x4_t y = vmulq_f32(p, scale);
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), vcltq_f32(a, c->lo)));
}

// The first two passes of a softmax row: row[k] = e^((row[k] - max) * scale)
// (unnormalised), *emax their maximum and *inv = 1 / their SIMD8 sum.
void fips_softmax_row_exp(float *row, int cols, float scale, float *emax, float *inv) {
    const exp_consts c = exp_consts_make();
    const float32x4_t sv = vdupq_n_f32(scale);
    // The maximum does not depend on the order (a NaN makes every output
    // NaN either way: here through the maximum, in Swift through the sum).
    float32x4_t m0 = vdupq_n_f32(-3.40282347e+38f), m1 = m0;
    int k = 0;
    for (; k + 8 <= cols; k += 8) {
        m0 = vmaxq_f32(m0, vld1q_f32(row + k));
        m1 = vmaxq_f32(m1, vld1q_f32(row + k + 4));
    }
    float mx = vmaxvq_f32(vmaxq_f32(m0, m1));
    for (; k < cols; k++) mx = row[k] > mx ? row[k] : mx;
    const float32x4_t mxv = vdupq_n_f32(mx);
    // SIMD8 sum: lanes 0-3 in s0, 4-7 in s1, each in row order.
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, e_max = s0;
    k = 0;
    for (; k + 8 <= cols; k += 8) {
        float32x4_t e0 = exp4(&c, vmulq_f32(vsubq_f32(vld1q_f32(row + k), mxv), sv));
        float32x4_t e1 = exp4(&c, vmulq_f32(vsubq_f32(vld1q_f32(row + k + 4), mxv), sv));
        vst1q_f32(row + k, e0);
        vst1q_f32(row + k + 4, e1);
        s0 = vaddq_f32(s0, e0);
        s1 = vaddq_f32(s1, e1);
        e_max = vmaxq_f32(e_max, vmaxq_f32(e0, e1));
    }
    float sum = simd8_sum(s0, s1), em = vmaxvq_f32(e_max);
    if (k < cols) {
        float t[8];
        for (int j = 0; j < 8; j++) t[j] = k + j < cols ? (row[k + j] - mx) * scale : -__builtin_inff();
        float32x4_t e0 = exp4(&c, vld1q_f32(t)), e1 = exp4(&c, vld1q_f32(t + 4));
        vst1q_f32(t, e0);
        vst1q_f32(t + 4, e1);
        for (int j = 0; k + j < cols; j++) {
            row[k + j] = t[j];
            sum += t[j];
            em = t[j] > em ? t[j] : em;
        }
    }
    *emax = em;
    *inv = 1.0f / sum;
}

void fips_softmax_rows_neon(float *x, size_t ld, int rows, int cols, float scale) {
    for (int m = 0; m < rows; m++) {
        float *row = x + (size_t)m * ld;
        float emax, inv;
        fips_softmax_row_exp(row, cols, scale, &emax, &inv);
        const float32x4_t iv = vdupq_n_f32(inv);
        int k = 0;
        for (; k + 8 <= cols; k += 8) {
            vst1q_f32(row + k, vmulq_f32(vld1q_f32(row + k), iv));
            vst1q_f32(row + k + 4, vmulq_f32(vld1q_f32(row + k + 4), iv));
        }
        for (; k < cols; k++) row[k] *= inv;
    }
}

// x * 0.5 * (1 + erf(x / sqrt 2)), FastMath.erf: x P(x^2) / Q(x^2) on [-4, 4].
typedef struct erf_consts {
    float32x4_t lo, hi, p0, p1, p2, p3, p4, p5, p6, q0, q1, q2, q3, q4, rsqrt2, half, one;
} erf_consts;

static inline float32x4_t gelu4(const erf_consts *c, float32x4_t v) {
    float32x4_t a = vmulq_f32(v, c->rsqrt2);
    float32x4_t x = vminq_f32(vmaxq_f32(a, c->lo), c->hi);   // FastMath.clamp, as in exp4
    float32x4_t x2 = vmulq_f32(x, x);
    float32x4_t p = vaddq_f32(vmulq_f32(x2, c->p0), c->p1);
    p = vaddq_f32(vmulq_f32(x2, p), c->p2);
    p = vaddq_f32(vmulq_f32(x2, p), c->p3);
    p = vaddq_f32(vmulq_f32(x2, p), c->p4);
    p = vaddq_f32(vmulq_f32(x2, p), c->p5);
    p = vaddq_f32(vmulq_f32(x2, p), c->p6);
    p = vmulq_f32(x, p);
    float32x4_t q = vaddq_f32(vmulq_f32(x2, c->q0), c->q1);
    q = vaddq_f32(vmulq_f32(x2, q), c->q2);
    q = vaddq_f32(vmulq_f32(x2, q), c->q3);
    q = vaddq_f32(vmulq_f32(x2, q), c->q4);
    return vmulq_f32(vmulq_f32(v, c->half), vaddq_f32(c->one, vdivq_f32(p, q)));
}

void fips_gelu_erf_neon(float *x, size_t count) {
    const erf_consts c = {
        vdupq_n_f32(-4.0f), vdupq_n_f32(4.0f),
        K(0xaf95df0b), K(0x32edffee), K(0xb60cff51), K(0xb86ec2d2),   // -2.72614225801306e-10 ...
        K(0xba40ac63), K(0xbb41a1f6), K(0xbc83dbd4),                  // ... -1.60960333262415e-02
        K(0xb77460cd), K(0xb95fbd29), K(0xbadc924e), K(0xbbf19bf8),   // -1.45660718464996e-05 ...
        K(0xbc69b6a7),                                                // ... -1.42647390514189e-02
        K(0x3f3504f3), vdupq_n_f32(0.5f), vdupq_n_f32(1.0f)};         // 0.70710678118654752
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        vst1q_f32(x + i, gelu4(&c, vld1q_f32(x + i)));
        vst1q_f32(x + i + 4, gelu4(&c, vld1q_f32(x + i + 4)));
    }
    if (i < count) {                          // Swift pads its last SIMD8 with zeros
        float t[8];
        for (size_t j = 0; j < 8; j++) t[j] = i + j < count ? x[i + j] : 0.0f;
        vst1q_f32(t, gelu4(&c, vld1q_f32(t)));
        vst1q_f32(t + 4, gelu4(&c, vld1q_f32(t + 4)));
        for (size_t j = 0; i + j < count; j++) x[i + j] = t[j];
    }
}
// Activations.layerNorm: mean and biased variance as SIMD8 lane sums, then
// ((x - mean) * inv) * weight + bias.
void fips_layer_norm_neon(const float *x, size_t ldx, int rows, int D, const float *weight, const float *bias,
                          float eps, float *out, size_t ldo) {
    for (int r = 0; r < rows; r++) {
        const float *xi = x + (size_t)r * ldx;
        float *o = out + (size_t)r * ldo;
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
        int k = 0;
        for (; k + 8 <= D; k += 8) {
            s0 = vaddq_f32(s0, vld1q_f32(xi + k));
            s1 = vaddq_f32(s1, vld1q_f32(xi + k + 4));
        }
        float sum = simd8_sum(s0, s1);
        for (; k < D; k++) sum += xi[k];
        const float mean = sum / (float)D;
        const float32x4_t mv = vdupq_n_f32(mean);
        float32x4_t v0 = vdupq_n_f32(0.0f), v1 = v0;
        k = 0;
        for (; k + 8 <= D; k += 8) {
            float32x4_t d0 = vsubq_f32(vld1q_f32(xi + k), mv), d1 = vsubq_f32(vld1q_f32(xi + k + 4), mv);
            v0 = vaddq_f32(v0, vmulq_f32(d0, d0));
            v1 = vaddq_f32(v1, vmulq_f32(d1, d1));
        }
        float var_sum = simd8_sum(v0, v1);
        for (; k < D; k++) {
            float d = xi[k] - mean;
            var_sum += d * d;
        }
        const float inv = 1.0f / __builtin_sqrtf(var_sum / (float)D + eps);
        const float32x4_t iv = vdupq_n_f32(inv);
        k = 0;
        for (; k + 4 <= D; k += 4) {
            float32x4_t n = vmulq_f32(vsubq_f32(vld1q_f32(xi + k), mv), iv);
            vst1q_f32(o + k, vaddq_f32(vmulq_f32(n, vld1q_f32(weight + k)), vld1q_f32(bias + k)));
        }
        for (; k < D; k++) o[k] = (xi[k] - mean) * inv * weight[k] + bias[k];
    }
}
#endif
