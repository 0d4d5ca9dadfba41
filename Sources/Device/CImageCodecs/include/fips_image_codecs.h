// JPEG and PNG decoding for device code (libjpeg-turbo, libpng16, zlib).
// Plain functions with no varargs and no library types in the interface, so
// that Embedded Swift can call them through this header alone. Errors never
// exit or abort: libjpeg and libpng errors are caught with setjmp/longjmp.
#ifndef FIPS_IMAGE_CODECS_H
#define FIPS_IMAGE_CODECS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// A decoded image: RGB8 interleaved, rows tightly packed (stride = width*3).
typedef struct fips_image {
    uint8_t *pixels;   // malloc'd; release with fips_image_free
    uint32_t width;    // the decoded size (the header's, divided by scale_denom, rounded up)
    uint32_t height;
    uint32_t source_width;   // the size the header declares
    uint32_t source_height;
    uint32_t scale_denom;    // 1, or 2, 4, 8 for a JPEG decoded at reduced size in the DCT domain
    uint64_t work_bytes;     // FIPS_DECODE_TOO_MUCH_MEMORY: the decoder memory the image needs
} fips_image;

// Format decided by content (magic bytes), never by file name.
enum {
    FIPS_FORMAT_UNKNOWN = 0,
    FIPS_FORMAT_JPEG = 1,  // FF D8 FF
    FIPS_FORMAT_PNG = 2,   // 89 50 4E 47 0D 0A 1A 0A
};
int fips_sniff_format(const uint8_t *data, size_t n);

// Result codes of the decoders.
enum {
    FIPS_DECODE_OK = 0,
    FIPS_DECODE_TOO_LARGE = 1,   // decoded width*height > max_pixels; out holds the sizes and scale that were tried
    FIPS_DECODE_TRUNCATED = 2,   // data ends early
    FIPS_DECODE_CORRUPT = 3,     // malformed data; err holds the library's message
    FIPS_DECODE_NO_MEMORY = 4,
    FIPS_DECODE_UNSUPPORTED = 5, // valid but unsupported (err says why)
    FIPS_DECODE_BAD_SIZE = 6,    // zero width or height
    FIPS_DECODE_TOO_MUCH_MEMORY = 7, // a multi-scan (progressive) JPEG whose whole-image coefficient
                                     // buffer (out->work_bytes) is over 3 * max_pixels bytes
};

// Decode a whole JPEG / PNG held in memory into RGB8. Greyscale is
// replicated, CMYK/YCCK and palettes are converted, 16-bit samples keep their
// high byte and alpha is dropped (as PIL's convert("RGB") does). The header is
// read and the size checked against max_pixels before any pixel buffer is
// allocated. On failure out->pixels is NULL and err (errlen bytes, may be NULL)
// receives a one-line reason without a file name.
//
// min_short_side > 0 lets a JPEG decode at reduced size in the DCT domain
// (libjpeg's scale 1/2, 1/4 or 1/8, the smallest whose shorter side is still
// >= min_short_side; these are the scales PIL's Image.draft uses), so that
// its cost and memory follow what the caller keeps, not the camera's
// resolution. max_pixels then bounds the reduced size, and the whole-image
// buffer of a multi-scan JPEG (which libjpeg holds at full size whatever the
// scale) is bounded by 3 * max_pixels bytes, the memory of an RGB image at
// the limit. 0 decodes at full size, exactly as before.
int fips_decode_jpeg(const uint8_t *data, size_t n, uint64_t max_pixels, uint32_t min_short_side,
                     fips_image *out, char *err, size_t errlen);
int fips_decode_png(const uint8_t *data, size_t n, uint64_t max_pixels,
                    fips_image *out, char *err, size_t errlen);

void fips_image_free(fips_image *img);

#ifdef __cplusplus
}
#endif
#endif
