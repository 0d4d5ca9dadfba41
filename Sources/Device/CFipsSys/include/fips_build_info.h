// What a program was built from and for: `--version` and fipsd_build_info.
#ifndef FIPS_BUILD_INFO_H
#define FIPS_BUILD_INFO_H

#ifdef __cplusplus
extern "C" {
#endif

// `git describe --always --dirty` of the source tree when it was built
// (scripts/stamp_revision.sh), or "unknown" for a tree that was not stamped.
const char *fips_build_revision(void);
// "release", "size" or "debug": the optimisation the C code was built with.
const char *fips_build_mode(void);
// The CPU the code was compiled for: "x86_64", "aarch64", "aarch64+dotprod".
const char *fips_build_cpu(void);
// The board file boards/build used ("rpi5"), or "host" for a `swift build`.
const char *fips_build_board(void);

#ifdef __cplusplus
}
#endif
#endif
