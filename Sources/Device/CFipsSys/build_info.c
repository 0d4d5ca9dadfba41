// Build facts from the compiler's own macros and two stamps: the git revision
// (a header scripts/stamp_revision.sh writes before every build, git-ignored,
// so a clean tree compiles without it) and the board (boards/build's -DFIPS_BOARD).
#include "fips_build_info.h"

#if defined(__has_include)
#if __has_include("fips_revision.h")
#include "fips_revision.h"
#endif
#endif
#ifndef FIPS_REVISION
#define FIPS_REVISION "unknown"
#endif
#ifndef FIPS_BOARD
#define FIPS_BOARD "host"
#endif

const char *fips_build_revision(void) { return FIPS_REVISION; }
const char *fips_build_board(void) { return FIPS_BOARD; }

const char *fips_build_mode(void) {
#if defined(__OPTIMIZE_SIZE__)
    return "size";
#elif defined(__OPTIMIZE__)
    return "release";
#else
    return "debug";
#endif
}

const char *fips_build_cpu(void) {
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
    return "aarch64+dotprod";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__x86_64__) && defined(__AVX512VNNI__)
    return "x86_64+avx512vnni";
#elif defined(__x86_64__) && defined(__AVX2__)
    return "x86_64+avx2";
#elif defined(__x86_64__)
    return "x86_64";
#else
    return "other";
#endif
}
