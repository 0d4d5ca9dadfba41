// Kernel table, CPU detection and the checked entry points.
#include "qgemm_internal.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

static const char *const qg_names[FIPS_QKERNEL_COUNT] = {
    "scalar", "avx2", "avx512vnni", "neon", "neon-dotprod",
};

// Bit i set: kernel i runs here. Filled once, at load time (the constructor)
// or on first use, whichever comes first; both compute the same value.
static int qg_supported_mask = -1;
#if defined(__x86_64__)
int qg_x86_has_vbmi2 = 0;
#endif

static int qg_detect(void) {
    int mask = 1 << FIPS_QKERNEL_SCALAR;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
        unsigned long long xcr0 = 0;
        if (osxsave) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = ((unsigned long long)hi << 32) | lo;
        }
        int ymm_os = avx && (xcr0 & 0x6) == 0x6;           // XMM and YMM state saved
        int zmm_os = ymm_os && (xcr0 & 0xE0) == 0xE0;      // opmask, ZMM0-15 upper, ZMM16-31
        unsigned b7 = 0, c7 = 0;
        if (__get_cpuid_max(0, NULL) >= 7) __cpuid_count(7, 0, a, b7, c7, d);
        int avx2 = (b7 >> 5) & 1;
        int f = (b7 >> 16) & 1, bw = (b7 >> 30) & 1, vl = (b7 >> 31) & 1;
        int vnni = (c7 >> 11) & 1, vbmi2 = (c7 >> 6) & 1;
        if (ymm_os && avx2) mask |= 1 << FIPS_QKERNEL_AVX2;
        if (zmm_os && f && bw && vl && vnni) {
            mask |= 1 << FIPS_QKERNEL_AVX512VNNI;
            qg_x86_has_vbmi2 = vbmi2;
        }
    }
#elif defined(__aarch64__)
    mask |= 1 << FIPS_QKERNEL_NEON;    // Advanced SIMD is mandatory on AArch64
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP);
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
    if (hw & HWCAP_ASIMDDP) mask |= 1 << FIPS_QKERNEL_NEON_DOTPROD;
#endif
#endif
    return mask;
}

__attribute__((constructor)) static void qg_init(void) {
    __atomic_store_n(&qg_supported_mask, qg_detect(), __ATOMIC_RELEASE);
}

static int qg_mask(void) {
    int m = __atomic_load_n(&qg_supported_mask, __ATOMIC_ACQUIRE);
    if (m < 0) { qg_init(); m = __atomic_load_n(&qg_supported_mask, __ATOMIC_ACQUIRE); }
    return m;
}

const char *fips_qgemm_kernel_name(int kernel) {
    return kernel >= 0 && kernel < FIPS_QKERNEL_COUNT ? qg_names[kernel] : NULL;
}

int fips_qgemm_kernel_supported(int kernel) {
    return kernel >= 0 && kernel < FIPS_QKERNEL_COUNT && ((qg_mask() >> kernel) & 1);
}

int fips_qgemm_kernel_by_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < FIPS_QKERNEL_COUNT; i++)
        if (strcmp(name, qg_names[i]) == 0) return fips_qgemm_kernel_supported(i) ? i : -2;
    return -1;
}

int fips_qgemm_best_kernel(void) {
    static const int order[] = {FIPS_QKERNEL_AVX512VNNI, FIPS_QKERNEL_NEON_DOTPROD, FIPS_QKERNEL_AVX2,
                                FIPS_QKERNEL_NEON, FIPS_QKERNEL_SCALAR};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (fips_qgemm_kernel_supported(order[i])) return order[i];
    return FIPS_QKERNEL_SCALAR;
}

int fips_qgemm_env_kernel(void) {
    const char *s = getenv("FIPS_KERNEL");
    if (!s || !*s) return fips_qgemm_best_kernel();
    return fips_qgemm_kernel_by_name(s);
}

int fips_quantize_rows(int kernel, const float *x, size_t ldx, int rows, int k,
                       const float *static_scale, int8_t *q, float *scales, int32_t *gsum) {
    if (!fips_qgemm_kernel_supported(kernel) || rows < 0 || k <= 0) return -1;
    if (rows == 0) return 0;
    if (!x || !q || !scales || !gsum || ldx < (size_t)k) return -1;
    switch (kernel) {
#if defined(__x86_64__)
    case FIPS_QKERNEL_AVX2: qg_quantize_avx2(x, ldx, rows, k, static_scale, q, scales, gsum); return 0;
    case FIPS_QKERNEL_AVX512VNNI: qg_quantize_avx512(x, ldx, rows, k, static_scale, q, scales, gsum); return 0;
#endif
#if defined(__aarch64__)
    case FIPS_QKERNEL_NEON:
    case FIPS_QKERNEL_NEON_DOTPROD: qg_quantize_neon(x, ldx, rows, k, static_scale, q, scales, gsum); return 0;
#endif
    default: return qg_quantize_scalar(x, ldx, rows, k, static_scale, q, scales, gsum);
    }
}

static int qg_format_ok(const fips_qmatrix *w) {
    if (!w || w->rows <= 0 || w->cols <= 0 || !w->data || !w->scales) return 0;
    const fips_qformat_traits *f = fips_qformat_traits_of(w->format);
    if (!f) return 0;
    return !f->sparse || (w->offsets && w->masks);
}

size_t fips_qgemm_scratch_bytes(const fips_qmatrix *w) {
    if (!w || w->cols <= 0) return 0;
    size_t B = ((size_t)w->cols + 31) / 32;
    return QG_PANEL_BLOCK_MAX * B * QG_TILE + 64;   // + 64: room to align
}

int fips_qgemm(int kernel, const int8_t *a, const float *a_scales, const int32_t *a_gsum,
               int m0, int m1, const fips_qmatrix *w, int p0, int p1,
               const float *bias, float *out, size_t ldo, void *scratch) {
    if (!fips_qgemm_kernel_supported(kernel) || !qg_format_ok(w)) return -1;
    int P = (w->rows + 15) / 16;
    if (m0 < 0 || m1 < m0 || p0 < 0 || p1 < p0 || p1 > P) return -1;
    if (m0 == m1 || p0 == p1) return 0;
    if (!a || !a_scales || !a_gsum || !out || !scratch) return -1;
    if (ldo < (size_t)(p1 * 16 < w->rows ? p1 * 16 : w->rows) && m1 - m0 > 1) return -1;
    qg_args g;
    g.a = a; g.as = a_scales; g.gs = a_gsum;
    g.B = (w->cols + 31) / 32; g.Kp = g.B * 32;
    g.m0 = m0; g.m1 = m1;
    g.format = w->format; g.N = w->rows;
    g.data = (const uint8_t *)w->data; g.ws = w->scales; g.offsets = w->offsets; g.masks = w->masks;
    g.bias = bias; g.out = out; g.ldo = ldo;
    g.scratch = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    switch (kernel) {
#if defined(__x86_64__)
    case FIPS_QKERNEL_AVX2: qg_gemm_avx2(&g, p0, p1); return 0;
    case FIPS_QKERNEL_AVX512VNNI: qg_gemm_avx512(&g, p0, p1); return 0;
#endif
#if defined(__aarch64__)
    case FIPS_QKERNEL_NEON: qg_gemm_neon(&g, p0, p1); return 0;
    case FIPS_QKERNEL_NEON_DOTPROD: qg_gemm_neondot(&g, p0, p1); return 0;
#endif
    default: qg_gemm_scalar(&g, p0, p1); return 0;
    }
}
