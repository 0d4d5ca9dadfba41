// Bit-exactness check of the CFipsKernels integer GEMM, as a plain C program
// so it runs the same on x86-64 and (under qemu) on aarch64:
//   qgemm_check            every kernel this CPU has against the scalar one
//   FIPS_KERNEL=neon ...   only that kernel (exit 3 when it is refused)
//   qgemm_check --bench    GMAC/s of each kernel and format (ViT-S shapes)
// Prints one checksum over all cases (the scalar results and the quantised
// activations): x86-64 and aarch64 must print the same one.
#include "fips_qgemm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state;
static uint64_t next_u64(void) {   // SplitMix64
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rand_int(int lo, int hi) { return lo + (int)(next_u64() % (uint64_t)(hi - lo + 1)); }
// Split points come from their own stream so the case data (and the
// checksum) do not depend on how many kernels are tested.
static uint64_t split_state = 99;
static int split_int(int lo, int hi) {
    uint64_t z = (split_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return lo + (int)((z ^ (z >> 31)) % (uint64_t)(hi - lo + 1));
}
static float rand_unit(void) { return (float)(next_u64() >> 40) / (float)(1 << 24); }   // [0, 1)

static uint64_t hash = 1469598103934665603ull;   // FNV-1a over everything checked
static void hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { hash ^= b[i]; hash *= 1099511628211ull; }
}

#define NFORMATS 5
static const int formats[NFORMATS] = {FIPS_QFORMAT_Q8, FIPS_QFORMAT_Q4G32, FIPS_QFORMAT_Q3G32, FIPS_QFORMAT_Q8SPARSE, FIPS_QFORMAT_Q2G32};
static const char *format_name(int f) { return fips_qformat_traits_of(f)->name; }

typedef struct {
    fips_qmatrix w;
    void *data; float *scales; uint32_t *offsets; uint64_t *masks;
} packed_t;

static void pack_random(packed_t *pk, int format, int N, int K, int sparse_pct) {
    // Ranges written out (not read from the table the kernels use).
    int lo = format == FIPS_QFORMAT_Q4G32 ? -8 : format == FIPS_QFORMAT_Q3G32 ? -4 : format == FIPS_QFORMAT_Q2G32 ? -2 : -127;
    int hi = format == FIPS_QFORMAT_Q4G32 ? 7 : format == FIPS_QFORMAT_Q3G32 ? 3 : format == FIPS_QFORMAT_Q2G32 ? 1 : 127;
    int8_t *v = malloc((size_t)N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        v[i] = (int8_t)rand_int(lo, hi);
        if (rand_int(0, 99) < sparse_pct) v[i] = 0;
    }
    size_t ns = fips_qpack_logical_scale_count(format, N, K);
    float *ls = malloc(ns * sizeof(float));
    for (size_t i = 0; i < ns; i++) ls[i] = (rand_unit() + 0.01f) * 0.02f * (rand_int(0, 9) == 0 ? -1.0f : 1.0f);
    size_t tiles = fips_qpack_tile_count(N, K);
    pk->data = malloc(fips_qpack_data_bytes(format, N, K, v) + 1);
    pk->scales = malloc(fips_qpack_scale_count(format, N, K) * sizeof(float));
    pk->offsets = format == FIPS_QFORMAT_Q8SPARSE ? malloc((tiles + 1) * 4) : NULL;
    pk->masks = format == FIPS_QFORMAT_Q8SPARSE ? malloc(tiles * 64) : NULL;
    if (fips_qpack(format, N, K, v, ls, pk->data, pk->scales, pk->offsets, pk->masks) != 0) { fprintf(stderr, "pack failed\n"); exit(1); }
    pk->w = (fips_qmatrix){format, N, K, pk->data, pk->scales, pk->offsets, pk->masks};
    // Round trip.
    int8_t *v2 = malloc((size_t)N * K);
    float *ls2 = malloc(ns * sizeof(float));
    if (fips_qunpack(&pk->w, v2, ls2) != 0 || memcmp(v, v2, (size_t)N * K) || memcmp(ls, ls2, ns * sizeof(float))) {
        fprintf(stderr, "FAIL: pack/unpack round trip %s N=%d K=%d\n", format_name(format), N, K);
        exit(1);
    }
    free(v); free(ls); free(v2); free(ls2);
}
static void free_packed(packed_t *pk) { free(pk->data); free(pk->scales); free(pk->offsets); free(pk->masks); }

static int failures = 0;

// One case: quantise with each kernel, multiply with each kernel (full and
// split), compare bits with the scalar kernel.
static void run_case(const int *kernels, int nk, int M, int N, int K, int format, int use_static, int use_bias, int sparse_pct) {
    int B = (K + 31) / 32, Kp = B * 32, P = (N + 15) / 16;
    size_t ldx = (size_t)K + (size_t)rand_int(0, 3);
    float *x = malloc((size_t)M * ldx * sizeof(float));
    for (size_t i = 0; i < (size_t)M * ldx; i++) {
        // Quarter steps against a scale of 0.5 make exact ties (x2 = n + 1/2).
        x[i] = use_static == 2 ? (float)rand_int(-600, 600) * 0.25f : (rand_unit() * 2 - 1) * 3.0f;
    }
    if (M > 1) for (int k = 0; k < K; k++) x[ldx + k] = 0.0f;     // an all-zero row: scale 1
    float sscale = use_static == 2 ? 0.5f : 0.021f;
    const float *ss = use_static ? &sscale : NULL;
    int8_t *q = malloc((size_t)M * Kp), *q2 = malloc((size_t)M * Kp);
    float *as = malloc(M * sizeof(float)), *as2 = malloc(M * sizeof(float));
    int32_t *gs = malloc((size_t)M * B * 4), *gs2 = malloc((size_t)M * B * 4);
    fips_quantize_rows(FIPS_QKERNEL_SCALAR, x, ldx, M, K, ss, q, as, gs);
    hash_bytes(q, (size_t)M * Kp); hash_bytes(as, M * sizeof(float)); hash_bytes(gs, (size_t)M * B * 4);
    for (int i = 0; i < nk; i++) {
        memset(q2, 0x55, (size_t)M * Kp);
        if (fips_quantize_rows(kernels[i], x, ldx, M, K, ss, q2, as2, gs2) != 0 ||
            memcmp(q, q2, (size_t)M * Kp) || memcmp(as, as2, M * 4) || memcmp(gs, gs2, (size_t)M * B * 4)) {
            fprintf(stderr, "FAIL: quantize %s M=%d K=%d static=%d\n", fips_qgemm_kernel_name(kernels[i]), M, K, use_static);
            failures++;
        }
    }
    packed_t pk;
    pack_random(&pk, format, N, K, sparse_pct);
    float *bias = NULL;
    if (use_bias) { bias = malloc(N * sizeof(float)); for (int n = 0; n < N; n++) bias[n] = rand_unit() - 0.5f; }
    size_t ldo = (size_t)N + (size_t)rand_int(0, 5);
    size_t outn = (size_t)M * ldo;
    float *ref = malloc(outn * 4), *out = malloc(outn * 4);
    void *scratch = malloc(fips_qgemm_scratch_bytes(&pk.w));
    const uint32_t sentinel = 0x7FC0DEADu;
    for (size_t i = 0; i < outn; i++) memcpy(&ref[i], &sentinel, 4);
    if (fips_qgemm(FIPS_QKERNEL_SCALAR, q, as, gs, 0, M, &pk.w, 0, P, bias, ref, ldo, scratch) != 0) { fprintf(stderr, "scalar refused\n"); exit(1); }
    for (int m = 0; m < M; m++) hash_bytes(ref + (size_t)m * ldo, (size_t)N * 4);
    for (int i = 0; i < nk; i++) {
        for (int split = 0; split < 3; split++) {
            for (size_t j = 0; j < outn; j++) memcpy(&out[j], &sentinel, 4);
            if (split == 0) {
                fips_qgemm(kernels[i], q, as, gs, 0, M, &pk.w, 0, P, bias, out, ldo, scratch);
            } else if (split == 1) {     // rows in random pieces
                for (int m = 0; m < M;) { int e = m + split_int(1, M - m); fips_qgemm(kernels[i], q, as, gs, m, e, &pk.w, 0, P, bias, out, ldo, scratch); m = e; }
            } else {                     // panels in random pieces
                for (int p = 0; p < P;) { int e = p + split_int(1, P - p); fips_qgemm(kernels[i], q, as, gs, 0, M, &pk.w, p, e, bias, out, ldo, scratch); p = e; }
            }
            if (memcmp(ref, out, outn * 4)) {
                size_t j = 0;
                while (!memcmp(&ref[j], &out[j], 4)) j++;
                fprintf(stderr, "FAIL: %s %s M=%d N=%d K=%d static=%d bias=%d split=%d: [%zu][%zu] %.9g != %.9g\n",
                        fips_qgemm_kernel_name(kernels[i]), format_name(format), M, N, K, use_static, use_bias, split,
                        j / ldo, j % ldo, out[j], ref[j]);
                failures++;
                break;
            }
        }
    }
    free(x); free(q); free(q2); free(as); free(as2); free(gs); free(gs2); free(bias); free(ref); free(out); free(scratch);
    free_packed(&pk);
}

// Thread CPU time: the build machine is shared, and time spent descheduled
// is not the kernel's.
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void bench(const int *kernels, int nk) {
    const int shapes[2][2] = {{384, 1536}, {1536, 384}};   // {K, N}, M = 257
    const int M = 257;
    for (int s = 0; s < 2; s++) {
        int K = shapes[s][0], N = shapes[s][1], B = (K + 31) / 32, Kp = 32 * B, P = (N + 15) / 16;
        float *x = malloc((size_t)M * K * 4);
        for (size_t i = 0; i < (size_t)M * K; i++) x[i] = rand_unit() * 2 - 1;
        int8_t *q = malloc((size_t)M * Kp); float *as = malloc(M * 4); int32_t *gs = malloc((size_t)M * B * 4);
        float *out = malloc((size_t)M * N * 4);
        for (int i = 0; i < nk; i++) {
            int kern = kernels[i];
            double t0 = now_s(); int reps = 0;
            do { fips_quantize_rows(kern, x, K, M, K, NULL, q, as, gs); reps++; } while (now_s() - t0 < 0.1);
            double tq = (now_s() - t0) / reps;
            printf("M=%d K=%-4d N=%-4d %-12s quantize %7.1f us |", M, K, N, fips_qgemm_kernel_name(kern), tq * 1e6);
            for (int f = 0; f < NFORMATS; f++) {
                packed_t pk;
                pack_random(&pk, formats[f], N, K, formats[f] == FIPS_QFORMAT_Q8SPARSE ? 50 : 0);
                void *scratch = malloc(fips_qgemm_scratch_bytes(&pk.w));
                fips_qgemm(kern, q, as, gs, 0, M, &pk.w, 0, P, NULL, out, N, scratch);
                double best = 1e9;
                for (int rep = 0; rep < 10; rep++) {
                    double t1 = now_s(); int n = 0;
                    do { fips_qgemm(kern, q, as, gs, 0, M, &pk.w, 0, P, NULL, out, N, scratch); n++; } while (now_s() - t1 < 0.02);
                    double t = (now_s() - t1) / n;
                    if (t < best) best = t;
                }
                printf(" %s %6.1f", format_name(formats[f]), (double)M * N * K / best * 1e-9);
                free(scratch); free_packed(&pk);
            }
            printf("  GMAC/s\n");
        }
        free(x); free(q); free(as); free(gs); free(out);
    }
}

int main(int argc, char **argv) {
    int kernels[FIPS_QKERNEL_COUNT], nk = 0;
    const char *forced = getenv("FIPS_KERNEL");
    if (forced && *forced) {
        int id = fips_qgemm_env_kernel();
        if (id < 0) { printf("qgemm_check: FIPS_KERNEL=%s refused (%s)\n", forced, id == -1 ? "unknown" : "not supported by this CPU"); return 3; }
        kernels[nk++] = id;
    } else {
        for (int i = 0; i < FIPS_QKERNEL_COUNT; i++) if (fips_qgemm_kernel_supported(i)) kernels[nk++] = i;
    }
    printf("qgemm_check: best kernel %s; testing", fips_qgemm_kernel_name(fips_qgemm_best_kernel()));
    for (int i = 0; i < nk; i++) printf(" %s", fips_qgemm_kernel_name(kernels[i]));
    printf("\n");
    // Refusals never crash.
    for (int i = 0; i < FIPS_QKERNEL_COUNT; i++) {
        if (fips_qgemm_kernel_supported(i)) continue;
        float x = 1, s; int8_t q[32]; int32_t gs;
        if (fips_quantize_rows(i, &x, 1, 1, 1, NULL, q, &s, &gs) != -1 || fips_qgemm_kernel_by_name(fips_qgemm_kernel_name(i)) != -2) {
            fprintf(stderr, "FAIL: unsupported kernel %s not refused\n", fips_qgemm_kernel_name(i)); failures++;
        }
    }
    if (fips_qgemm_kernel_by_name("no-such-kernel") != -1) { fprintf(stderr, "FAIL: unknown name\n"); failures++; }

    rng_state = 12345;
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) { bench(kernels, nk); return 0; }

    static const int Ms[] = {1, 2, 5, 7, 13, 33};
    static const int Ns[] = {1, 3, 16, 17, 33, 50, 64};
    static const int Ks[] = {1, 5, 31, 32, 33, 100, 384};
    int cases = 0;
    for (int f = 0; f < NFORMATS; f++)
        for (int i = 0; i < 24; i++) {
            int M = Ms[rand_int(0, 5)], N = Ns[rand_int(0, 6)], K = Ks[rand_int(0, 6)];
            int st = rand_int(0, 2), bias = rand_int(0, 1);
            int sp = formats[f] == FIPS_QFORMAT_Q8SPARSE ? rand_int(0, 4) * 25 : rand_int(0, 1) * 30;
            run_case(kernels, nk, M, N, K, formats[f], st, bias, sp);
            cases++;
        }
    // One ViT-sized case per format (257 tokens, a padded K).
    for (int f = 0; f < NFORMATS; f++) { run_case(kernels, nk, 257, 40, 361, formats[f], 0, 1, formats[f] == FIPS_QFORMAT_Q8SPARSE ? 60 : 0); cases++; }
    printf("qgemm_check: %d cases, %d failures, checksum %016llx\n", cases, failures, (unsigned long long)hash);
    return failures ? 1 : 0;
}
