/* fips.h: the FiPS Edge Kit runtime as a C library (libfips.a from
 * ./boards/build BOARD; libfips-c.so from `swift build -c release --product fips-c`).
 *
 * Open a .fips model (memory-mapped, checksum verified), give it an image (an
 * encoded JPEG/PNG in memory, a file, or a raw RGB24 or YUYV frame), then read
 * the last image's top-k classes and/or its embedding:
 *
 *     char err[256];
 *     fips_model *m = fips_open("model.fips", 2, err, sizeof err);
 *     if (!m) { fprintf(stderr, "%s\n", err); return 1; }
 *     if (fips_run_file(m, "cat.jpg") != FIPS_OK) { fprintf(stderr, "%s\n", fips_error(m)); ... }
 *     int cls[5]; float score[5];
 *     int n = fips_top_k(m, 5, cls, score);
 *     for (int i = 0; i < n; i++) printf("%s %.3f\n", fips_label(m, cls[i]), score[i]);
 *     fips_close(m);
 *
 * Results are what fips-run and fipsd print for the same model and image
 * (the same decoder, preprocessing and kernels). Threads: a handle owns its
 * buffers and worker threads; use one handle per calling thread, or lock
 * around each run + read. Handles share nothing, so several may be open.
 * Every function returning int returns FIPS_OK (0) or a negative FIPS_ERR_*
 * (or a count, where documented); fips_error() says why in one line.
 */
#ifndef FIPS_H
#define FIPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    FIPS_OK = 0,
    FIPS_ERR_ARGUMENT = -1,  /* a NULL pointer, a size out of range, bad geometry */
    FIPS_ERR_IMAGE = -2,     /* the image cannot be read or decoded (truncated, not an image, too large) */
    FIPS_ERR_NO_HEAD = -3,   /* fips_top_k on a model without a classification head (use fips_embedding) */
    FIPS_ERR_NO_IMAGE = -4,  /* a result asked for before any image ran */
};

typedef struct fips_model fips_model;

/* Opens the model at `path` with `threads` worker threads (0: the CPU count).
 * NULL on failure, with the reason in err (err_len bytes, may be 0). */
fips_model *fips_open(const char *path, int threads, char *err, size_t err_len);
void fips_close(fips_model *m);

/* The model: classes of its head (0: none), embedding length, input size. */
int fips_num_classes(const fips_model *m);
int fips_embedding_dim(const fips_model *m);
int fips_input_size(const fips_model *m);
/* Class i's label (the model's own, else "class_<i>"); NULL out of range. Valid until fips_close. */
const char *fips_label(fips_model *m, int i);

/* Decode, preprocess and run one image. */
int fips_run_encoded(fips_model *m, const void *bytes, size_t n);          /* JPEG or PNG bytes */
int fips_run_file(fips_model *m, const char *path);                        /* a JPEG or PNG file */
int fips_run_rgb(fips_model *m, const uint8_t *rgb, int width, int height, int stride);   /* RGB24 rows */
int fips_run_yuyv(fips_model *m, const uint8_t *yuyv, int width, int height, int stride); /* YUYV 4:2:2 (V4L2) */

/* The last image's k best classes by softmax score, best first: writes up to
 * k class indices and scores, returns how many (min(k, classes)). */
int fips_top_k(fips_model *m, int k, int *classes, float *scores);
/* The last image's embedding (the CLS token's final LayerNorm output): writes
 * min(capacity, dim) floats, returns dim. */
int fips_embedding(fips_model *m, float *out, int capacity);

/* The last error on this handle, one line ("" if none). Valid until the next call on it. */
const char *fips_error(fips_model *m);

#ifdef __cplusplus
}
#endif
#endif
