// JPEG (libjpeg-turbo) and PNG (libpng16) decoders to RGB8 for device code.
// See include/fips_image_codecs.h for the contract.
#include "fips_image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#define FIPS_MSG_MAX 200

static void set_err(char *err, size_t errlen, const char *msg) {
    if (!err || errlen == 0) return;
    size_t n = strlen(msg);
    if (n >= errlen) n = errlen - 1;
    memcpy(err, msg, n);
    err[n] = 0;
}

static void clear_out(fips_image *out) {
    memset(out, 0, sizeof *out);
    out->scale_denom = 1;
}

int fips_sniff_format(const uint8_t *data, size_t n) {
    if (!data) return FIPS_FORMAT_UNKNOWN;
    if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return FIPS_FORMAT_JPEG;
    if (n >= 4 && data[0] == 0x89 && data[1] == 0x50 && data[2] == 0x4E && data[3] == 0x47) return FIPS_FORMAT_PNG;
    return FIPS_FORMAT_UNKNOWN;
}

void fips_image_free(fips_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
    img->width = 0;
    img->height = 0;
}

/* ---------------------------------------------------------------- JPEG -- */

struct fips_jpeg_err {
    struct jpeg_error_mgr pub;   // must be first
    jmp_buf jb;
    int code;
    char msg[JMSG_LENGTH_MAX];
    // Buffers that must survive a longjmp live here (the struct escapes to
    // libjpeg, so stores to it are in memory before any library call).
    uint8_t *pixels;
    uint8_t *row;
};

static void fips_jpeg_error_exit(j_common_ptr cinfo) {
    struct fips_jpeg_err *e = (struct fips_jpeg_err *)cinfo->err;
    if (e->code == FIPS_DECODE_OK) e->code = FIPS_DECODE_CORRUPT;
    if (cinfo->err->msg_code == JERR_OUT_OF_MEMORY) e->code = FIPS_DECODE_NO_MEMORY;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

// Warnings (level -1) about damaged or missing data are errors here: a
// truncated JPEG must be rejected, not padded with grey. Trace messages and
// harmless warnings (unknown JFIF revision, bad ICC marker, ...) are ignored.
static void fips_jpeg_emit_message(j_common_ptr cinfo, int level) {
    struct fips_jpeg_err *e = (struct fips_jpeg_err *)cinfo->err;
    if (level >= 0) return;
    int c = cinfo->err->msg_code;
    if (c == JWRN_JPEG_EOF) {
        e->code = FIPS_DECODE_TRUNCATED;
        set_err(e->msg, sizeof e->msg, "premature end of data");
        longjmp(e->jb, 1);
    }
    if (c == JWRN_BOGUS_ICC) {  // metadata only; the pixels are fine
        cinfo->err->num_warnings++;
        return;
    }
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    // JWRN_HIT_MARKER, JWRN_HUFF_BAD_CODE, JWRN_MUST_RESYNC, JWRN_EXTRANEOUS_DATA
    // and (where compiled in) JWRN_ARITH_BAD_CODE all read "Corrupt JPEG data: ...".
    if (c == JWRN_HIT_MARKER || c == JWRN_HUFF_BAD_CODE || c == JWRN_MUST_RESYNC ||
        c == JWRN_EXTRANEOUS_DATA || c == JWRN_NOT_SEQUENTIAL ||
        strncmp(buf, "Corrupt JPEG data", 17) == 0) {
        e->code = FIPS_DECODE_CORRUPT;
        const char *m = buf;
        if (strncmp(m, "Corrupt JPEG data: ", 19) == 0) m += 19;  // the caller says "corrupt JPEG: "
        set_err(e->msg, sizeof e->msg, m);
        longjmp(e->jb, 1);
    }
    cinfo->err->num_warnings++;
}

// PIL's CMYK -> RGB (Convert.c cmyk2rgb): nk - nk*c/255 with its rounding.
static inline uint8_t cmyk_channel(int c, int nk) {
    int tmp = c * nk + 128;
    int v = nk - (((tmp >> 8) + tmp) >> 8);
    return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// One decoded grey (1 byte a pixel) or CMYK (4) row to RGB, as PIL converts
// them; `inverted`: Adobe's CMYK JPEGs store the inks inverted.
static void jpeg_row_to_rgb(const uint8_t *row, uint8_t *dst, uint32_t width, int cmyk, int inverted) {
    for (uint32_t x = 0; x < width; x++) {
        if (!cmyk) {
            uint8_t v = row[x];
            dst[3 * x] = v; dst[3 * x + 1] = v; dst[3 * x + 2] = v;
            continue;
        }
        const uint8_t *s = row + 4 * (size_t)x;
        int c0 = s[0], c1 = s[1], c2 = s[2], k = s[3];
        if (inverted) { c0 = 255 - c0; c1 = 255 - c1; c2 = 255 - c2; k = 255 - k; }
        int nk = 255 - k;
        dst[3 * x] = cmyk_channel(c0, nk);
        dst[3 * x + 1] = cmyk_channel(c1, nk);
        dst[3 * x + 2] = cmyk_channel(c2, nk);
    }
}

// The smallest DCT scale (1/8, 1/4, 1/2, else 1/1) whose output keeps the
// shorter side >= min_short; sets cinfo's scale and output dimensions.
// Powers of two only: libjpeg-turbo has SIMD IDCTs for them (its 3/8, 5/8 ..
// 7/8 IDCTs are plain C and save little time), and they are exactly the
// scales of PIL's Image.draft, so every reduced decode has a reference.
static void choose_jpeg_scale(struct jpeg_decompress_struct *cinfo, uint32_t min_short) {
    cinfo->scale_num = 1;
    if (min_short > 0) {
        for (unsigned d = 8; d >= 2; d /= 2) {
            cinfo->scale_denom = d;
            jpeg_calc_output_dimensions(cinfo);
            uint32_t s = cinfo->output_width < cinfo->output_height ? cinfo->output_width : cinfo->output_height;
            if (s >= min_short) return;
        }
    }
    cinfo->scale_denom = 1;
    jpeg_calc_output_dimensions(cinfo);
}

// Bytes of the whole-image coefficient buffer libjpeg allocates for a
// multi-scan (progressive) JPEG, at full resolution whatever the output
// scale: one 64-coefficient block of 2-byte JCOEFs per 8x8 block of each
// component, rounded up to whole MCUs (jdcoefct.c, jinit_d_coef_controller).
static uint64_t jpeg_coefficient_bytes(const struct jpeg_decompress_struct *cinfo) {
    uint64_t total = 0;
    for (int ci = 0; ci < cinfo->num_components; ci++) {
        const jpeg_component_info *c = &cinfo->comp_info[ci];
        uint64_t bw = (c->width_in_blocks + c->h_samp_factor - 1) / c->h_samp_factor * c->h_samp_factor;
        uint64_t bh = (c->height_in_blocks + c->v_samp_factor - 1) / c->v_samp_factor * c->v_samp_factor;
        total += bw * bh * sizeof(JBLOCK);
    }
    return total;
}

// Output colour space for the stored one: 0 RGB, 1 grey, 2 CMYK.
static int jpeg_output_mode(struct jpeg_decompress_struct *cinfo) {
    switch (cinfo->jpeg_color_space) {
        case JCS_GRAYSCALE: cinfo->out_color_space = JCS_GRAYSCALE; return 1;
        case JCS_CMYK:
        case JCS_YCCK: cinfo->out_color_space = JCS_CMYK; return 2;
        default: cinfo->out_color_space = JCS_RGB; return 0;
    }
}

int fips_decode_jpeg(const uint8_t *data, size_t n, uint64_t max_pixels, uint32_t min_short_side,
                     fips_image *out, char *err, size_t errlen) {
    clear_out(out);
    set_err(err, errlen, "");
    if (!data || n == 0) {
        set_err(err, errlen, "empty input");
        return FIPS_DECODE_TRUNCATED;
    }
    struct jpeg_decompress_struct cinfo;
    struct fips_jpeg_err jerr;
    memset(&jerr, 0, sizeof jerr);

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = fips_jpeg_error_exit;
    jerr.pub.emit_message = fips_jpeg_emit_message;
    jerr.code = FIPS_DECODE_OK;

    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(jerr.pixels);
        free(jerr.row);
        clear_out(out);
        set_err(err, errlen, jerr.msg);
        return jerr.code == FIPS_DECODE_OK ? FIPS_DECODE_CORRUPT : jerr.code;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);

    uint32_t w = cinfo.image_width, h = cinfo.image_height;
    if (w == 0 || h == 0) {
        jpeg_destroy_decompress(&cinfo);
        set_err(err, errlen, "image has zero width or height");
        return FIPS_DECODE_BAD_SIZE;
    }
    int mode = jpeg_output_mode(&cinfo);
    choose_jpeg_scale(&cinfo, min_short_side);
    uint32_t ow = cinfo.output_width, oh = cinfo.output_height;
    out->source_width = w;
    out->source_height = h;
    out->scale_denom = cinfo.scale_denom;
    if ((uint64_t)ow * (uint64_t)oh > max_pixels) {
        jpeg_destroy_decompress(&cinfo);
        out->width = ow;
        out->height = oh;
        set_err(err, errlen, "image is over the pixel limit");
        return FIPS_DECODE_TOO_LARGE;
    }
    if (jpeg_has_multiple_scans(&cinfo)) {
        uint64_t need = jpeg_coefficient_bytes(&cinfo);
        if (need / 3 > max_pixels) {  // need > 3 * max_pixels, without overflow
            jpeg_destroy_decompress(&cinfo);
            out->width = ow;
            out->height = oh;
            out->work_bytes = need;
            set_err(err, errlen, "multi-scan JPEG needs too much decoder memory");
            return FIPS_DECODE_TOO_MUCH_MEMORY;
        }
    }
    jpeg_start_decompress(&cinfo);
    int comps = cinfo.output_components;
    if ((mode == 0 && comps != 3) || (mode == 1 && comps != 1) || (mode == 2 && comps != 4)) {
        jerr.code = FIPS_DECODE_UNSUPPORTED;
        set_err(jerr.msg, sizeof jerr.msg, "unsupported JPEG colour layout");
        longjmp(jerr.jb, 1);
    }
    size_t rowbytes = (size_t)ow * 3;
    jerr.pixels = malloc(rowbytes * (size_t)oh);
    if (mode != 0) jerr.row = malloc((size_t)ow * (size_t)comps);
    if (!jerr.pixels || (mode != 0 && !jerr.row)) {
        jerr.code = FIPS_DECODE_NO_MEMORY;
        set_err(jerr.msg, sizeof jerr.msg, "out of memory for the pixel buffer");
        longjmp(jerr.jb, 1);
    }
    int inverted = (mode == 2 && cinfo.saw_Adobe_marker);
    while (cinfo.output_scanline < oh) {
        uint32_t y = cinfo.output_scanline;
        uint8_t *dst = jerr.pixels + (size_t)y * rowbytes;
        JSAMPROW rp = (mode == 0) ? (JSAMPROW)dst : (JSAMPROW)jerr.row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
            jerr.code = FIPS_DECODE_TRUNCATED;
            set_err(jerr.msg, sizeof jerr.msg, "premature end of data");
            longjmp(jerr.jb, 1);
        }
        if (mode != 0) jpeg_row_to_rgb(jerr.row, dst, ow, mode == 2, inverted);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(jerr.row);
    out->pixels = jerr.pixels;
    out->width = ow;
    out->height = oh;
    return FIPS_DECODE_OK;
}

/* ----------------------------------------------------------------- PNG -- */

struct fips_png_ctx {
    jmp_buf jb;
    const uint8_t *data;
    size_t n, pos;
    int code;
    char msg[FIPS_MSG_MAX];
    uint8_t *pixels;
    png_bytep *rows;
};

static void fips_png_error(png_structp png, png_const_charp msg) {
    struct fips_png_ctx *c = (struct fips_png_ctx *)png_get_error_ptr(png);
    if (c->code == FIPS_DECODE_OK) {
        c->code = FIPS_DECODE_CORRUPT;
        set_err(c->msg, sizeof c->msg, msg ? msg : "libpng error");
    }
    longjmp(c->jb, 1);
}

static void fips_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void fips_png_read(png_structp png, png_bytep dst, size_t len) {
    struct fips_png_ctx *c = (struct fips_png_ctx *)png_get_io_ptr(png);
    if (len > c->n - c->pos) {
        c->code = FIPS_DECODE_TRUNCATED;
        set_err(c->msg, sizeof c->msg, "premature end of data");
        png_error(png, "premature end of data");
    }
    memcpy(dst, c->data + c->pos, len);
    c->pos += len;
}

int fips_decode_png(const uint8_t *data, size_t n, uint64_t max_pixels,
                    fips_image *out, char *err, size_t errlen) {
    clear_out(out);
    set_err(err, errlen, "");
    if (!data || n == 0) {
        set_err(err, errlen, "empty input");
        return FIPS_DECODE_TRUNCATED;
    }
    struct fips_png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.data = data;
    ctx.n = n;
    ctx.code = FIPS_DECODE_OK;

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, fips_png_error, fips_png_warning);
    if (!png) {
        set_err(err, errlen, "out of memory (png_create_read_struct)");
        return FIPS_DECODE_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_err(err, errlen, "out of memory (png_create_info_struct)");
        return FIPS_DECODE_NO_MEMORY;
    }
    if (setjmp(ctx.jb)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx.pixels);
        free(ctx.rows);
        clear_out(out);
        set_err(err, errlen, ctx.msg);
        return ctx.code == FIPS_DECODE_OK ? FIPS_DECODE_CORRUPT : ctx.code;
    }
    png_set_read_fn(png, &ctx, fips_png_read);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);
    if (w == 0 || h == 0) {
        png_destroy_read_struct(&png, &info, NULL);
        set_err(err, errlen, "image has zero width or height");
        return FIPS_DECODE_BAD_SIZE;
    }
    out->source_width = w;
    out->source_height = h;
    if ((uint64_t)w * (uint64_t)h > max_pixels) {
        png_destroy_read_struct(&png, &info, NULL);
        out->width = w;
        out->height = h;
        set_err(err, errlen, "image is over the pixel limit");
        return FIPS_DECODE_TOO_LARGE;
    }

    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16) png_set_strip_16(png);  // keeps the high byte, as PIL does
    png_set_strip_alpha(png);                     // drop alpha (also palette tRNS), no compositing
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 3 && ch != 4) || png_get_bit_depth(png, info) != 8 || rowbytes != (size_t)w * (size_t)ch) {
        ctx.code = FIPS_DECODE_UNSUPPORTED;
        set_err(ctx.msg, sizeof ctx.msg, "unsupported PNG pixel layout");
        longjmp(ctx.jb, 1);
    }
    ctx.pixels = malloc(rowbytes * (size_t)h);
    ctx.rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!ctx.pixels || !ctx.rows) {
        ctx.code = FIPS_DECODE_NO_MEMORY;
        set_err(ctx.msg, sizeof ctx.msg, "out of memory for the pixel buffer");
        longjmp(ctx.jb, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) ctx.rows[y] = ctx.pixels + (size_t)y * rowbytes;
    png_read_image(png, ctx.rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.rows);
    ctx.rows = NULL;

    if (ch == 4) {  // compact RGBA -> RGB in place
        size_t count = (size_t)w * (size_t)h;
        uint8_t *p = ctx.pixels;
        for (size_t i = 0; i < count; i++) {
            p[3 * i] = p[4 * i];
            p[3 * i + 1] = p[4 * i + 1];
            p[3 * i + 2] = p[4 * i + 2];
        }
        uint8_t *q = realloc(p, count * 3);
        if (q) ctx.pixels = q;
    }
    out->pixels = ctx.pixels;
    out->width = w;
    out->height = h;
    return FIPS_DECODE_OK;
}
