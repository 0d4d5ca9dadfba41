// Small POSIX helpers for device code. Embedded Swift cannot import Glibc's
// overlay, macros such as MAP_FAILED, or variadic functions, so device code
// reaches the OS only through these plain functions.
#ifndef FIPS_SYS_H
#define FIPS_SYS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Maps a whole file read-only. Returns NULL and sets *err (an errno value)
// on failure; *size receives the file size. A zero-byte file maps to a
// non-NULL dummy pointer with *size == 0.
const void *fips_map_file(const char *path, size_t *size, int *err);
void fips_unmap_file(const void *base, size_t size);

// Reads at most max_bytes of a file into a malloc'd buffer (free with fips_free).
// *err = EFBIG when the file is larger than max_bytes.
unsigned char *fips_read_file(const char *path, size_t max_bytes, size_t *size, int *err);
void *fips_alloc(size_t bytes);            // 64-byte aligned, zeroed; NULL on failure
void fips_free(void *p);

// 0: does not exist, 1: regular file, 2: directory, 3: other.
int fips_path_kind(const char *path);
// Writes a whole file through a temporary name and rename(); returns 0 or errno.
int fips_write_file_atomic(const char *path, const void *data, size_t n);
int fips_mkdir_p(const char *path);        // returns 0 or errno

int64_t fips_now_ns(void);                 // CLOCK_MONOTONIC
void fips_write_fd(int fd, const char *s, size_t n);
const char *fips_strerror(int err);

// printf("%.*f") and printf("%.*g") without varargs; return the length.
int fips_format_fixed(char *buf, size_t n, double v, int precision);
int fips_format_general(char *buf, size_t n, double v, int precision);
// strtod on a NUL-terminated string; *ok = 1 when the whole string parsed.
double fips_parse_double(const char *s, int *ok);

int fips_cpu_count(void);
// Peak resident set size of this process in bytes (getrusage).
int64_t fips_peak_rss_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
