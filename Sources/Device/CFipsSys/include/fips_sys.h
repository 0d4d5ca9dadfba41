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

// CPUs this process may run on: the scheduler affinity mask (which a cgroup
// cpuset, taskset or a container runtime narrows), capped by the online count.
// At least 1. A CPU-time quota (cgroup cpu.max) is not taken into account.
int fips_cpu_count(void);
// Peak resident set size of this process in bytes (getrusage).
int64_t fips_peak_rss_bytes(void);

// ---- worker pool (fips_pool.c) ----
// Persistent threads that run fn(ctx, i) for i in 0..<count. A pool of N
// threads is N-1 workers plus the thread that calls fips_pool_run, which
// takes part in every job. Idle workers spin for ~50 µs, then sleep on a
// futex: a process that holds an idle pool uses no CPU.
typedef struct fips_pool fips_pool;
typedef void (*fips_pool_fn)(void *ctx, int64_t index);

#define FIPS_POOL_MAX_THREADS 256
// Each participant claims the next unclaimed index (good for uneven work).
#define FIPS_POOL_DYNAMIC 0
// Participant p of P runs the contiguous block [count*p/P, count*(p+1)/P).
#define FIPS_POOL_STATIC 1

// threads is clamped to 1...FIPS_POOL_MAX_THREADS. Returns NULL only when
// out of memory; if the OS refuses a thread the pool is smaller
// (fips_pool_threads says how big it is).
fips_pool *fips_pool_create(int threads);
int fips_pool_threads(const fips_pool *pool);
// Runs the job and returns when every index is done (the caller's writes
// before the call are visible to fn, and fn's writes to the caller after).
// Only one job runs at a time: a call from inside fn, or from another thread
// while a job runs, executes its indices itself, in order.
void fips_pool_run(fips_pool *pool, int64_t count, fips_pool_fn fn, void *ctx, int schedule);
// Stops and joins the workers. Not while a job runs.
void fips_pool_destroy(fips_pool *pool);

#ifdef __cplusplus
}
#endif
#endif
