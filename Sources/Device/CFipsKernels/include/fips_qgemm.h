// Integer GEMM for quantised linear layers: y = x·Wᵀ + b with W packed in one
// of the artifact-v2 formats (docs/KERNELS.md; the tile layouts: docs/ARTIFACT.md).
//
// Every kernel gives the same bits as the portable scalar one: the int32 dot
// products are exact and the float steps (int->float, multiplies, adds) are
// done one IEEE-754 operation at a time in a fixed order. This file must be
// compiled with -ffp-contract=off.
//
// One binary holds every kernel of its architecture (function-level target
// attributes); the CPU is inspected once at load time and a kernel the CPU
// lacks is refused by every entry point instead of faulting.
#ifndef FIPS_QGEMM_H
#define FIPS_QGEMM_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- the packed weight formats: THE table ----
// Every question about a packed format (its name, bits, range, tile bytes,
// scale groups, padding, aux alignment) is answered by this one table, in
// ggml's type_traits style; Swift reads it through FipsKernels' QuantFormat
// and PackedShape, and the artifact reader, the packer, the planner and the
// executor all ask those. The ids are the TensorDType raw values of artifact
// version 2 (docs/ARTIFACT.md gives the tile layouts).
#define FIPS_QFORMAT_Q8 3
#define FIPS_QFORMAT_Q4G32 4
#define FIPS_QFORMAT_Q3G32 5
#define FIPS_QFORMAT_Q8SPARSE 6
#define FIPS_QFORMAT_Q2G32 7

// Padding shared by every format: outputs are padded to whole panels of
// FIPS_QPANEL_ROWS, inputs to whole k-blocks of FIPS_QBLOCK_COLS; a tile is
// one panel by one k-block.
#define FIPS_QPANEL_ROWS 16
#define FIPS_QBLOCK_COLS 32

//    id                     name         bits  min   max  tile_bytes  group  sparse  aux_align
#define FIPS_QFORMAT_TABLE(X) \
    X(FIPS_QFORMAT_Q8,       "q8",        8,  -127,  127,  512,         0,     0,      4) \
    X(FIPS_QFORMAT_Q4G32,    "q4g32",     4,    -8,    7,  256,        32,     0,      4) \
    X(FIPS_QFORMAT_Q3G32,    "q3g32",     3,    -4,    3,  192,        32,     0,      4) \
    X(FIPS_QFORMAT_Q8SPARSE, "q8-sparse", 8,  -127,  127,  512,         0,     1,      8) \
    X(FIPS_QFORMAT_Q2G32,    "q2g32",     2,    -2,    1,  128,        32,     0,      4)
// name:       as the artifact tools print it (fips inspect, profiles).
// bits:       bits per logical weight.
// min, max:   the logical value range.
// tile_bytes: stored bytes of one tile; for a sparse format the dense upper
//             bound (its data is the nonzero bytes, their count varies).
// group:      inputs per scale: 32 = one scale per output row and k-block
//             (packed [panels][k-blocks][16]); 0 = one per output row
//             (packed [padded rows]).
// sparse:     1 = zeros elided: aux is the scales, then u32 tile offsets
//             [tiles + 1], then (8-byte aligned) u64 masks [tiles * 8].
// aux_align:  the alignment the artifact reader requires of the aux region.
typedef struct fips_qformat_traits {
    int format;
    const char *name;
    int bits;
    int min_value, max_value;
    int tile_bytes;
    int group_size;
    int sparse;
    int aux_alignment;
} fips_qformat_traits;
// The row of the table for `format`, NULL when no packed format has that id.
const fips_qformat_traits *fips_qformat_traits_of(int format);

// Kernel ids (0 ..< FIPS_QKERNEL_COUNT). Ids are the same on every build;
// which ones run depends on the architecture and the CPU.
#define FIPS_QKERNEL_SCALAR 0        // portable C, the reference
#define FIPS_QKERNEL_AVX2 1          // x86-64 AVX2 (vpmaddubsw/vpmaddwd, no VNNI)
#define FIPS_QKERNEL_AVX512VNNI 2    // x86-64 AVX-512 F/BW/VL + VNNI (vpdpbusd)
#define FIPS_QKERNEL_NEON 3          // aarch64 Armv8.0 (smull/smlal/sadalp; Cortex-A72)
#define FIPS_QKERNEL_NEON_DOTPROD 4  // aarch64 with SDOT (Armv8.2 dotprod; Cortex-A76, A78)
#define FIPS_QKERNEL_COUNT 5

// A packed weight matrix of logical shape [rows = N][cols = K].
//   data:    the tiles (q8, q4g32, q3g32, q2g32) or the nonzero bytes (q8sparse)
//   scales:  f32 [Np] (q8, q8sparse) or [P][B][16] (q4g32, q3g32, q2g32)
//   offsets: u32 [P*B + 1] (q8sparse only, else NULL)
//   masks:   u64 [P*B*8]   (q8sparse only, else NULL)
// No alignment is required of any pointer.
typedef struct fips_qmatrix {
    int32_t format;
    int32_t rows;
    int32_t cols;
    const void *data;
    const float *scales;
    const uint32_t *offsets;
    const uint64_t *masks;
} fips_qmatrix;

// ---- kernels and CPU dispatch ----
const char *fips_qgemm_kernel_name(int kernel);   // "scalar", "avx2", ...; NULL for a bad id
int fips_qgemm_kernel_supported(int kernel);      // 1 when this binary and CPU can run it
// The id of a kernel by name: -1 when no kernel has that name, -2 when this
// CPU (or this architecture) cannot run it.
int fips_qgemm_kernel_by_name(const char *name);
int fips_qgemm_best_kernel(void);                 // the fastest supported kernel
// The kernel named by the environment variable FIPS_KERNEL, or the best one
// when it is unset or empty; -1 / -2 as fips_qgemm_kernel_by_name when it
// names an unknown or unsupported kernel.
int fips_qgemm_env_kernel(void);

// ---- activations ----
// Quantises `rows` rows of x (row r at x + r*ldx, k floats) to int8:
//   q     [rows][Kp]    (Kp = roundUp(k, 32); columns k ..< Kp are 0)
//   scales[rows]        s[m]: *static_scale for every row, or amax/127 per row
//                       (1 when the row is all zeros) when static_scale is NULL
//   gsum  [rows][Kp/32] sum of each 32-column block of q
// Returns 0, or -1 for an unsupported kernel or bad arguments. Every kernel
// gives identical bits.
int fips_quantize_rows(int kernel, const float *x, size_t ldx, int rows, int k,
                       const float *static_scale, int8_t *q, float *scales, int32_t *gsum);

// ---- the GEMM ----
// out[m*ldo + n] = y(m, n) for rows m0 <= m < m1 of the quantised activations
// (a: [M][Kp] with a_scales [M], a_gsum [M][Kp/32], both as fips_quantize_rows
// writes them; rows are addressed absolutely, so every thread passes the same
// pointers) and for the outputs n < w->rows of panels p0 <= p < p1
// (n = 16p ..< 16p+16). bias may be NULL. Columns n >= w->rows are never
// written. scratch must hold fips_qgemm_scratch_bytes(w) bytes (one buffer
// per thread). Returns 0, or -1 for an unsupported kernel or bad arguments.
// Any split of rows or panels over calls gives identical bits.
int fips_qgemm(int kernel, const int8_t *a, const float *a_scales, const int32_t *a_gsum,
               int m0, int m1, const fips_qmatrix *w, int p0, int p1,
               const float *bias, float *out, size_t ldo, void *scratch);
size_t fips_qgemm_scratch_bytes(const fips_qmatrix *w);

// ---- packing (host tools and tests) ----
// Sizes for a [rows][cols] matrix. data bytes of q8sparse depend on the
// values (pass them); the dense formats ignore `values` (may be NULL).
size_t fips_qpack_data_bytes(int format, int rows, int cols, const int8_t *values);
size_t fips_qpack_scale_count(int format, int rows, int cols);          // packed scales (f32)
size_t fips_qpack_logical_scale_count(int format, int rows, int cols);  // rows or rows*ceil(cols/32)
size_t fips_qpack_tile_count(int rows, int cols);   // P*B: offsets have P*B+1, masks P*B*8 entries
// Packs logical int8 values [rows][cols] and logical scales ([rows] for q8 /
// q8sparse, [rows][ceil(cols/32)] for q4g32 / q3g32 / q2g32) into data, packed_scales
// (and offsets, masks for q8sparse; NULL otherwise). Returns 0, or -1 for a
// bad format or a value outside the format's range.
int fips_qpack(int format, int rows, int cols, const int8_t *values, const float *scales,
               void *data, float *packed_scales, uint32_t *offsets, uint64_t *masks);
// The inverse: logical values [rows][cols] and logical scales. Returns 0 or -1.
int fips_qunpack(const fips_qmatrix *w, int8_t *values, float *scales);

#ifdef __cplusplus
}
#endif
#endif
