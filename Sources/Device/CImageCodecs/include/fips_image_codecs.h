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
    uint32_t width;
    uint32_t height;
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
    FIPS_DECODE_TOO_LARGE = 1,   // declared width*height > max_pixels; out->width/height hold the declared size
    FIPS_DECODE_TRUNCATED = 2,   // data ends early
    FIPS_DECODE_CORRUPT = 3,     // malformed data; err holds the library's message
    FIPS_DECODE_NO_MEMORY = 4,
    FIPS_DECODE_UNSUPPORTED = 5, // valid but unsupported (err says why)
    FIPS_DECODE_BAD_SIZE = 6,    // zero width or height
};

// Decode a whole JPEG / PNG held in memory into RGB8. Greyscale is
// replicated, CMYK/YCCK and palettes are converted, 16-bit samples keep their
// high byte and alpha is dropped (as PIL's convert("RGB") does). The header is
// read and the size checked against max_pixels before any pixel buffer is
// allocated. On failure out->pixels is NULL and err (errlen bytes, may be NULL)
// receives a one-line reason without a file name.
int fips_decode_jpeg(const uint8_t *data, size_t n, uint64_t max_pixels,
                     fips_image *out, char *err, size_t errlen);
int fips_decode_png(const uint8_t *data, size_t n, uint64_t max_pixels,
                    fips_image *out, char *err, size_t errlen);

void fips_image_free(fips_image *img);

#ifdef __cplusplus
}
#endif
#endif
