#define _GNU_SOURCE
#include "fips_sys.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const unsigned char fips_empty_file[1];

const void *fips_map_file(const char *path, size_t *size, int *err) {
    *size = 0; *err = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { *err = errno; return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0) { *err = errno; close(fd); return NULL; }
    if (S_ISDIR(st.st_mode)) { *err = EISDIR; close(fd); return NULL; }
    if (st.st_size == 0) { close(fd); return fips_empty_file; }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) { *err = e; return NULL; }
    *size = (size_t)st.st_size;
    return p;
}

void fips_unmap_file(const void *base, size_t size) {
    if (base && size > 0 && base != fips_empty_file) munmap((void *)base, size);
}

unsigned char *fips_read_file(const char *path, size_t max_bytes, size_t *size, int *err) {
    *size = 0; *err = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { *err = errno; return NULL; }
    struct stat st;
    if (fstat(fd, &st) != 0) { *err = errno; close(fd); return NULL; }
    if (S_ISDIR(st.st_mode)) { *err = EISDIR; close(fd); return NULL; }
    if ((size_t)st.st_size > max_bytes) { *err = EFBIG; close(fd); return NULL; }
    size_t cap = (size_t)st.st_size;
    unsigned char *buf = malloc(cap + 1);
    if (!buf) { *err = ENOMEM; close(fd); return NULL; }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0) { if (errno == EINTR) continue; *err = errno; free(buf); close(fd); return NULL; }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    *size = got;
    return buf;
}

void *fips_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

void fips_free(void *p) { free(p); }

int fips_path_kind(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return 1;
    if (S_ISDIR(st.st_mode)) return 2;
    return 3;
}

int fips_write_file_atomic(const char *path, const void *data, size_t n) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) return ENOMEM;
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { int e = errno; free(tmp); return e; }
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno; close(fd); unlink(tmp); free(tmp); return e;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) { int e = errno; unlink(tmp); free(tmp); return e; }
    if (rename(tmp, path) != 0) { int e = errno; unlink(tmp); free(tmp); return e; }
    free(tmp);
    return 0;
}

int fips_mkdir_p(const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
            buf[i] = c;
        }
    }
    return fips_path_kind(path) == 2 ? 0 : ENOTDIR;
}

int64_t fips_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void fips_write_fd(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) { if (errno == EINTR) continue; return; }
        s += w; n -= (size_t)w;
    }
}

const char *fips_strerror(int err) { return strerror(err); }

int fips_format_fixed(char *buf, size_t n, double v, int precision) {
    return snprintf(buf, n, "%.*f", precision, v);
}

int fips_format_general(char *buf, size_t n, double v, int precision) {
    return snprintf(buf, n, "%.*g", precision, v);
}

double fips_parse_double(const char *s, int *ok) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    *ok = (end != s && end && *end == 0 && errno == 0) ? 1 : 0;
    return v;
}

int fips_cpu_count(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = online > 0 ? (int)online : 1;
#ifdef __linux__
    // The affinity mask is what the scheduler will actually give us; the
    // kernel rejects a set smaller than its own CPU count, so grow until it fits.
    for (int cpus = 1024; cpus <= 65536; cpus *= 2) {
        cpu_set_t *set = CPU_ALLOC(cpus);
        if (!set) break;
        size_t bytes = CPU_ALLOC_SIZE(cpus);
        CPU_ZERO_S(bytes, set);
        if (sched_getaffinity(0, bytes, set) == 0) {
            int allowed = CPU_COUNT_S(bytes, set);
            CPU_FREE(set);
            if (allowed > 0 && allowed < n) n = allowed;
            break;
        }
        CPU_FREE(set);
        if (errno != EINVAL) break;
    }
#endif
    return n;
}

int64_t fips_peak_rss_bytes(void) {
    // VmHWM belongs to this program's address space. getrusage's ru_maxrss
    // survives execve: a program started by a big parent (a Python
    // benchmark) would report the parent's peak as its own.
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long long kb = -1;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "VmHWM:", 6) == 0) { kb = atoll(line + 6); break; }
        }
        fclose(f);
        if (kb >= 0) return (int64_t)kb * 1024;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (int64_t)ru.ru_maxrss * 1024;
}
