// Packing logical int8 weights into the artifact-v2 tile formats and back.
// Host tools (the quantiser, the artifact writer) and the tests use these;
// the runtime only reads what they wrote.
#include "qgemm_internal.h"
#include <string.h>

static int qp_range(int format, int *lo, int *hi) {
    const fips_qformat_traits *f = fips_qformat_traits_of(format);
    if (!f) return 0;
    *lo = f->min_value; *hi = f->max_value;
    return 1;
}

size_t fips_qpack_tile_count(int rows, int cols) {
    if (rows <= 0 || cols <= 0) return 0;
    return ((size_t)rows + FIPS_QPANEL_ROWS - 1) / FIPS_QPANEL_ROWS
         * (((size_t)cols + FIPS_QBLOCK_COLS - 1) / FIPS_QBLOCK_COLS);
}

size_t fips_qpack_data_bytes(int format, int rows, int cols, const int8_t *values) {
    const fips_qformat_traits *f = fips_qformat_traits_of(format);
    size_t tiles = fips_qpack_tile_count(rows, cols);
    if (!f) return 0;
    if (!f->sparse) return tiles * (size_t)f->tile_bytes;
    if (!values || tiles == 0) return 0;
    size_t nz = 0, n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i++) nz += values[i] != 0;
    return nz;
}

size_t fips_qpack_scale_count(int format, int rows, int cols) {
    const fips_qformat_traits *f = fips_qformat_traits_of(format);
    size_t Np = ((size_t)rows + FIPS_QPANEL_ROWS - 1) / FIPS_QPANEL_ROWS * FIPS_QPANEL_ROWS;
    if (!f || rows <= 0 || cols <= 0) return 0;
    return f->group_size ? Np * (((size_t)cols + f->group_size - 1) / f->group_size) : Np;
}

size_t fips_qpack_logical_scale_count(int format, int rows, int cols) {
    const fips_qformat_traits *f = fips_qformat_traits_of(format);
    if (!f || rows <= 0 || cols <= 0) return 0;
    return f->group_size ? (size_t)rows * (((size_t)cols + f->group_size - 1) / f->group_size) : (size_t)rows;
}

int fips_qpack(int format, int rows, int cols, const int8_t *values, const float *scales,
               void *data, float *packed_scales, uint32_t *offsets, uint64_t *masks) {
    int lo, hi;
    if (!qp_range(format, &lo, &hi) || rows <= 0 || cols <= 0 || !values || !scales || !data || !packed_scales) return -1;
    if (format == FIPS_QFORMAT_Q8SPARSE && (!offsets || !masks)) return -1;
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        if (values[i] < lo || values[i] > hi) return -1;
    const int P = (rows + 15) / 16, B = (cols + 31) / 32;
    uint8_t *out = (uint8_t *)data;
    size_t pos = 0;     // q8sparse: bytes written so far
    for (int p = 0; p < P; p++)
        for (int b = 0; b < B; b++) {
            int8_t tile[QG_TILE];   // logical values in tile order
            for (int grp = 0; grp < 8; grp++)
                for (int c = 0; c < 16; c++)
                    for (int t = 0; t < 4; t++) {
                        int n = 16 * p + c, k = 32 * b + 4 * grp + t;
                        tile[grp * 64 + c * 4 + t] = (n < rows && k < cols) ? values[(size_t)n * cols + k] : 0;
                    }
            size_t ti = (size_t)p * B + b;
            switch (format) {
            case FIPS_QFORMAT_Q8:
                memcpy(out + ti * 512, tile, 512);
                break;
            case FIPS_QFORMAT_Q4G32: {
                uint8_t *d = out + ti * 256;
                for (int j = 0; j < 4; j++)
                    for (int i = 0; i < 64; i++)
                        d[j * 64 + i] = (uint8_t)((tile[2 * j * 64 + i] + 8) | ((tile[(2 * j + 1) * 64 + i] + 8) << 4));
                break;
            }
            case FIPS_QFORMAT_Q3G32: {
                uint8_t *d = out + ti * 192;
                for (int i = 0; i < 64; i++) {
                    int high = 0;
                    for (int h = 0; h < 2; h++) {
                        int low = 0;
                        for (int j = 0; j < 4; j++) low |= ((tile[(4 * h + j) * 64 + i] + 4) & 3) << (2 * j);
                        d[h * 64 + i] = (uint8_t)low;
                    }
                    for (int grp = 0; grp < 8; grp++) high |= (((tile[grp * 64 + i] + 4) >> 2) & 1) << grp;
                    d[128 + i] = (uint8_t)high;
                }
                break;
            }
            case FIPS_QFORMAT_Q2G32: {
                // q3g32's low planes alone: byte h*64+i holds groups 4h..4h+3.
                uint8_t *d = out + ti * 128;
                for (int h = 0; h < 2; h++)
                    for (int i = 0; i < 64; i++) {
                        int v = 0;
                        for (int j = 0; j < 4; j++) v |= ((tile[(4 * h + j) * 64 + i] + 2) & 3) << (2 * j);
                        d[h * 64 + i] = (uint8_t)v;
                    }
                break;
            }
            case FIPS_QFORMAT_Q8SPARSE: {
                offsets[ti] = (uint32_t)pos;
                for (int wd = 0; wd < 8; wd++) {
                    uint64_t m = 0;
                    for (int i = 0; i < 64; i++)
                        if (tile[wd * 64 + i] != 0) { m |= (uint64_t)1 << i; out[pos++] = (uint8_t)tile[wd * 64 + i]; }
                    masks[ti * 8 + wd] = m;
                }
                break;
            }
            }
        }
    if (format == FIPS_QFORMAT_Q8SPARSE) offsets[(size_t)P * B] = (uint32_t)pos;
    // Scales, zero for padding rows.
    if (qg_is_blockwise(format)) {
        for (int p = 0; p < P; p++)
            for (int b = 0; b < B; b++)
                for (int c = 0; c < 16; c++) {
                    int n = 16 * p + c;
                    packed_scales[((size_t)p * B + b) * 16 + c] = n < rows ? scales[(size_t)n * B + b] : 0.0f;
                }
    } else {
        for (int n = 0; n < P * 16; n++) packed_scales[n] = n < rows ? scales[n] : 0.0f;
    }
    return 0;
}

int fips_qunpack(const fips_qmatrix *w, int8_t *values, float *scales) {
    int lo, hi;
    if (!w || !qp_range(w->format, &lo, &hi) || w->rows <= 0 || w->cols <= 0 || !w->data || !w->scales || !values || !scales) return -1;
    if (w->format == FIPS_QFORMAT_Q8SPARSE && (!w->offsets || !w->masks)) return -1;
    qg_args g;
    memset(&g, 0, sizeof g);
    g.format = w->format; g.N = w->rows;
    g.B = (w->cols + 31) / 32; g.Kp = g.B * 32;
    g.data = (const uint8_t *)w->data; g.offsets = w->offsets; g.masks = w->masks;
    const int rows = w->rows, cols = w->cols, P = (rows + 15) / 16, B = g.B;
    for (int p = 0; p < P; p++)
        for (int b = 0; b < B; b++) {
            int8_t tile[QG_TILE];
            qg_decode_tile_logical(&g, p * B + b, tile);
            for (int grp = 0; grp < 8; grp++)
                for (int c = 0; c < 16; c++)
                    for (int t = 0; t < 4; t++) {
                        int n = 16 * p + c, k = 32 * b + 4 * grp + t;
                        if (n < rows && k < cols) values[(size_t)n * cols + k] = tile[grp * 64 + c * 4 + t];
                    }
        }
    if (qg_is_blockwise(w->format)) {
        for (int n = 0; n < rows; n++)
            for (int b = 0; b < B; b++)
                scales[(size_t)n * B + b] = w->scales[((size_t)(n / 16) * B + b) * 16 + n % 16];
    } else {
        for (int n = 0; n < rows; n++) scales[n] = w->scales[n];
    }
    return 0;
}
