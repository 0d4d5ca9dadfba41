// What fips-profile asks the OS and the CPU, for device code (Embedded
// Swift reaches C only through plain functions like these).
#ifndef FIPS_PROBE_H
#define FIPS_PROBE_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Reads a whole file, also one whose stat size is 0 (/proc, /sys), into buf
// (at most cap - 1 bytes, NUL-terminated). Returns the byte count, or
// -errno when the file cannot be opened or read.
int64_t fips_probe_read_text(const char *path, char *buf, size_t cap);

// getauxval(AT_HWCAP) (which = 1) or getauxval(AT_HWCAP2) (which = 2);
// 0 where there is none.
uint64_t fips_probe_hwcap(int which);
// 1 when this is an aarch64 build, 2 for x86-64, 0 otherwise.
int fips_probe_arch(void);
// x86-64: the CPUID feature bits the kernels care about, as a comma-separated
// list in /proc/cpuinfo's spelling (sse4_2,avx,fma,avx2,avx512f,avx512bw,
// avx512vl,avx512_vnni,avx_vnni,...). Empty elsewhere. Returns the length.
int fips_probe_x86_features(char *buf, size_t cap);
// The CPU brand string (x86 CPUID), empty elsewhere. Returns the length.
int fips_probe_x86_brand(char *buf, size_t cap);

int64_t fips_probe_page_size(void);
int fips_probe_online_cpus(void);          // sysconf(_SC_NPROCESSORS_ONLN)
int fips_probe_isatty(int fd);
// uname(2) machine ("aarch64", "x86_64"). Returns the length.
int fips_probe_machine(char *buf, size_t cap);

// Memory bandwidth in GB/s (10^9 bytes per second) over a buffer of `bytes`
// split across `threads` threads: kind 0 reads it (64-bit sums), kind 1
// copies it to a second buffer (memcpy; counts bytes read plus written).
// The best of repetitions taking about `seconds` in all (at least 2).
// Returns a negative value when the buffers cannot be allocated.
double fips_probe_bandwidth(int kind, size_t bytes, int threads, double seconds);

#ifdef __cplusplus
}
#endif
#endif
