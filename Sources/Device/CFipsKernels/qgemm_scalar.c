// The portable reference: plain C loops written as the contract reads
// (docs/KERNELS.md, the contract), plus the tile decoders every kernel shares.
#include "qgemm_internal.h"

void qg_decode_tile_logical(const qg_args *g, int t, int8_t *dst) {
    switch (g->format) {
    case FIPS_QFORMAT_Q8: {
        const int8_t *s = (const int8_t *)g->data + (size_t)t * QG_TILE;
        for (int i = 0; i < QG_TILE; i++) dst[i] = s[i];
        break;
    }
    case FIPS_QFORMAT_Q4G32: {
        const uint8_t *s = g->data + (size_t)t * 256;
        for (int grp = 0; grp < 8; grp++)
            for (int i = 0; i < 64; i++) {
                int byte = s[(grp / 2) * 64 + i];
                int u = (grp & 1) ? byte >> 4 : byte & 15;
                dst[grp * 64 + i] = (int8_t)(u - 8);
            }
        break;
    }
    case FIPS_QFORMAT_Q3G32: {
        const uint8_t *s = g->data + (size_t)t * 192;
        for (int grp = 0; grp < 8; grp++)
            for (int i = 0; i < 64; i++) {
                int lo = (s[(grp / 4) * 64 + i] >> (2 * (grp % 4))) & 3;
                int hi = (s[128 + i] >> grp) & 1;
                dst[grp * 64 + i] = (int8_t)((lo | (hi << 2)) - 4);
            }
        break;
    }
    case FIPS_QFORMAT_Q2G32: {
        const uint8_t *s = g->data + (size_t)t * 128;
        for (int grp = 0; grp < 8; grp++)
            for (int i = 0; i < 64; i++)
                dst[grp * 64 + i] = (int8_t)(((s[(grp / 4) * 64 + i] >> (2 * (grp % 4))) & 3) - 2);
        break;
    }
    case FIPS_QFORMAT_Q8SPARSE: {
        const int8_t *s = (const int8_t *)g->data + g->offsets[t];
        const uint64_t *mk = g->masks + (size_t)t * 8;
        for (int i = 0; i < QG_TILE; i++)
            dst[i] = ((mk[i / 64] >> (i % 64)) & 1) ? *s++ : 0;
        break;
    }
    }
}

void qg_decode_tile_unsigned(const qg_args *g, int t, uint8_t *dst) {
    int8_t *d = (int8_t *)dst;
    qg_decode_tile_logical(g, t, d);
    int o = qg_format_offset(g->format);
    if (o) for (int i = 0; i < QG_TILE; i++) dst[i] = (uint8_t)(d[i] + o);
}

float qg_row_scale(float amax) {
    return amax > 0.0f ? amax / 127.0f : 1.0f;
}

// clamp to [-127, 127] (NaN -> -127, as x86 maxps/minps and NEON fmaxnm/fminnm
// give it), then round to nearest, ties to even, whatever the FPU rounding mode.
static int8_t qg_quantize_one(float v) {
    v = v > -127.0f ? v : -127.0f;
    v = v < 127.0f ? v : 127.0f;
    int i = (int)v;                 // toward zero
    float f = v - (float)i;         // exact: |v| < 2^7
    if (f > 0.5f || (f == 0.5f && (i & 1))) i++;
    else if (f < -0.5f || (f == -0.5f && (i & 1))) i--;
    return (int8_t)i;
}

int qg_quantize_scalar(const float *x, size_t ldx, int rows, int k, const float *static_scale,
                       int8_t *q, float *scales, int32_t *gsum) {
    int B = (k + 31) / 32, Kp = B * 32;
    for (int m = 0; m < rows; m++) {
        const float *xr = x + (size_t)m * ldx;
        float s;
        if (static_scale) {
            s = *static_scale;
        } else {
            float amax = 0.0f;
            for (int i = 0; i < k; i++) {
                float v = xr[i] < 0.0f ? -xr[i] : xr[i];
                amax = v > amax ? v : amax;           // NaN ignored
            }
            s = qg_row_scale(amax);
        }
        float inv = 1.0f / s;
        int8_t *qr = q + (size_t)m * Kp;
        for (int i = 0; i < Kp; i++) qr[i] = i < k ? qg_quantize_one(xr[i] * inv) : 0;
        for (int b = 0; b < B; b++) {
            int32_t sum = 0;
            for (int i = 0; i < 32; i++) sum += qr[b * 32 + i];
            gsum[(size_t)m * B + b] = sum;
        }
        scales[m] = s;
    }
    return 0;
}

void qg_gemm_scalar(const qg_args *g, int p0, int p1) {
    const int B = g->B, Kp = g->Kp;
    int8_t *w = (int8_t *)g->scratch;    // one panel's logical values, B tiles
    for (int p = p0; p < p1; p++) {
        for (int b = 0; b < B; b++) qg_decode_tile_logical(g, p * B + b, w + (size_t)b * QG_TILE);
        for (int m = g->m0; m < g->m1; m++) {
            const int8_t *am = g->a + (size_t)m * Kp;
            for (int c = 0; c < 16; c++) {
                int n = 16 * p + c;
                if (n >= g->N) break;
                float y;
                if (qg_is_blockwise(g->format)) {
                    float f = 0.0f;
                    for (int b = 0; b < B; b++) {
                        int32_t acc = 0;
                        for (int grp = 0; grp < 8; grp++)
                            for (int t = 0; t < 4; t++)
                                acc += (int32_t)am[32 * b + 4 * grp + t] * w[(size_t)b * QG_TILE + grp * 64 + c * 4 + t];
                        float part = (float)acc * g->ws[((size_t)p * B + b) * 16 + c];
                        f = f + part;
                    }
                    y = f * g->as[m];
                } else {
                    int32_t acc = 0;
                    for (int b = 0; b < B; b++)
                        for (int grp = 0; grp < 8; grp++)
                            for (int t = 0; t < 4; t++)
                                acc += (int32_t)am[32 * b + 4 * grp + t] * w[(size_t)b * QG_TILE + grp * 64 + c * 4 + t];
                    float ts = g->ws[n] * g->as[m];
                    y = (float)acc * ts;
                }
                y = y + (g->bias ? g->bias[n] : 0.0f);
                g->out[(size_t)m * g->ldo + n] = y;
            }
        }
    }
}
