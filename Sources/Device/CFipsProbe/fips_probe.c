#define _GNU_SOURCE
#include "fips_probe.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#endif

int64_t fips_probe_read_text(const char *path, char *buf, size_t cap) {
    if (!buf || cap == 0) return -EINVAL;
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -(int64_t)errno;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0) { if (errno == EINTR) continue; int e = errno; close(fd); buf[got] = 0; return -(int64_t)e; }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    return (int64_t)got;
}

uint64_t fips_probe_hwcap(int which) {
#if defined(__linux__) && defined(AT_HWCAP2)
    return (uint64_t)getauxval(which == 2 ? AT_HWCAP2 : AT_HWCAP);
#elif defined(__linux__)
    return which == 2 ? 0 : (uint64_t)getauxval(AT_HWCAP);
#else
    (void)which; return 0;
#endif
}

int fips_probe_arch(void) {
#if defined(__aarch64__)
    return 1;
#elif defined(__x86_64__)
    return 2;
#else
    return 0;
#endif
}

#if defined(__x86_64__)
static void append(char *buf, size_t cap, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len > 0 && *len + 1 < cap) buf[(*len)++] = ',';
    if (*len + n < cap) { memcpy(buf + *len, s, n); *len += n; }
    buf[*len < cap ? *len : cap - 1] = 0;
}
#endif

int fips_probe_x86_features(char *buf, size_t cap) {
    if (!buf || cap == 0) return 0;
    buf[0] = 0;
    size_t len = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        if (c & (1u << 20)) append(buf, cap, &len, "sse4_2");
        if (c & (1u << 28)) append(buf, cap, &len, "avx");
        if (c & (1u << 12)) append(buf, cap, &len, "fma");
        if (c & (1u << 29)) append(buf, cap, &len, "f16c");
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (b & (1u << 5)) append(buf, cap, &len, "avx2");
        if (b & (1u << 8)) append(buf, cap, &len, "bmi2");
        if (b & (1u << 16)) append(buf, cap, &len, "avx512f");
        if (b & (1u << 30)) append(buf, cap, &len, "avx512bw");
        if (b & (1u << 31)) append(buf, cap, &len, "avx512vl");
        if (c & (1u << 11)) append(buf, cap, &len, "avx512_vnni");
        if (d & (1u << 24)) append(buf, cap, &len, "amx_tile");
        if (d & (1u << 25)) append(buf, cap, &len, "amx_int8");
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        if (a & (1u << 4)) append(buf, cap, &len, "avx_vnni");
        if (a & (1u << 5)) append(buf, cap, &len, "avx512_bf16");
    }
#endif
    return (int)len;
}

int fips_probe_x86_brand(char *buf, size_t cap) {
    if (!buf || cap == 0) return 0;
    buf[0] = 0;
#if defined(__x86_64__)
    unsigned r[12];
    unsigned max = __get_cpuid_max(0x80000000u, NULL);
    if (max < 0x80000004u || cap < 49) return 0;
    for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(buf, r, 48);
    buf[48] = 0;
    // trim
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ') buf[--n] = 0;
    size_t s = 0;
    while (buf[s] == ' ') s++;
    if (s) memmove(buf, buf + s, n - s + 1);
    return (int)strlen(buf);
#else
    return 0;
#endif
}

int64_t fips_probe_page_size(void) { return (int64_t)sysconf(_SC_PAGESIZE); }
int fips_probe_online_cpus(void) { long n = sysconf(_SC_NPROCESSORS_ONLN); return n < 1 ? 1 : (int)n; }
int fips_probe_isatty(int fd) { return isatty(fd); }

int fips_probe_machine(char *buf, size_t cap) {
    if (!buf || cap == 0) return 0;
    struct utsname u;
    if (uname(&u) != 0) { buf[0] = 0; return 0; }
    size_t n = strlen(u.machine);
    if (n >= cap) n = cap - 1;
    memcpy(buf, u.machine, n);
    buf[n] = 0;
    return (int)n;
}

// ---- bandwidth ----
typedef struct {
    int kind;
    const uint64_t *src;
    uint64_t *dst;
    size_t words;
    uint64_t sum;
} bw_job;

static void *bw_run(void *p) {
    bw_job *j = (bw_job *)p;
    if (j->kind == 0) {
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t i = 0;
        for (; i + 4 <= j->words; i += 4) { s0 += j->src[i]; s1 += j->src[i + 1]; s2 += j->src[i + 2]; s3 += j->src[i + 3]; }
        for (; i < j->words; i++) s0 += j->src[i];
        j->sum = s0 + s1 + s2 + s3;
    } else {
        memcpy(j->dst, j->src, j->words * 8);
        j->sum = j->dst[j->words / 2];
    }
    return NULL;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

volatile uint64_t fips_probe_sink;

double fips_probe_bandwidth(int kind, size_t bytes, int threads, double seconds) {
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    size_t words = bytes / 8;
    uint64_t *src = NULL, *dst = NULL;
    if (posix_memalign((void **)&src, 64, words * 8) != 0) return -1;
    if (kind != 0 && posix_memalign((void **)&dst, 64, words * 8) != 0) { free(src); return -1; }
    for (size_t i = 0; i < words; i++) src[i] = i * 0x9E3779B97F4A7C15ull;
    if (dst) memset(dst, 0, words * 8);
    bw_job jobs[256];
    pthread_t tids[256];
    size_t per = words / (size_t)threads;
    double best = 0, start = now_s();
    for (int rep = 0; rep < 1000; rep++) {
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            jobs[t].kind = kind;
            jobs[t].src = src + per * (size_t)t;
            jobs[t].dst = dst ? dst + per * (size_t)t : NULL;
            jobs[t].words = per;
            if (t == 0) continue;
            if (pthread_create(&tids[t], NULL, bw_run, &jobs[t]) != 0) jobs[t].words = 0;   // ran by nobody: not counted
        }
        bw_run(&jobs[0]);
        for (int t = 1; t < threads; t++) if (jobs[t].words) pthread_join(tids[t], NULL);
        double dt = now_s() - t0;
        size_t moved = 0;
        for (int t = 0; t < threads; t++) { moved += jobs[t].words * 8 * (kind == 0 ? 1 : 2); fips_probe_sink += jobs[t].sum; }
        double gbs = (double)moved / dt / 1e9;
        if (gbs > best) best = gbs;
        if (rep >= 1 && now_s() - start >= seconds) break;
    }
    free(src);
    free(dst);
    return best;
}
