/*
 * A QEMU TCG plugin that attributes the guest instructions executed to the
 * functions of the (static) program: where the instructions of
 * Benchmarks/qemu/insn_count.c's total go. Used by
 * Benchmarks/arm_vs_onnxruntime.py to split fips-run's count into GEMM,
 * softmax, GELU, decode, ...
 *
 *   gcc -shared -fPIC -O2 -o insn_by_symbol.so insn_by_symbol.c
 *   qemu-aarch64 -cpu cortex-a76 -d plugin \
 *       -plugin ./insn_by_symbol.so,symbols=SYMS,entry=0xE_ENTRY,out=COUNTS ./fips-run ...
 *
 * SYMS: one function a line, "ADDRESS SIZE NAME" (hex, hex, the raw symbol
 * name), as `nm -S --defined-only` gives them at link-time addresses; the
 * harness fills in sizes nm leaves out. E_ENTRY: the ELF header's e_entry.
 * The aarch64 programs are static-PIE: qemu loads them at a base the link
 * addresses do not show, so the base is the runtime entry point
 * (qemu_plugin_entry_code, known once the program is loaded, so it is read at
 * the first translation) minus e_entry.
 *
 * Counting: each translated block is split into runs of consecutive
 * instructions that fall in one function; the first instruction of each run
 * gets an inline add of the run's length to that function's counter (so a
 * block executed costs one add per function it spans, as cheap as
 * insn_count.c's one add per block, and the sum over functions is
 * insn_count.c's total). Instructions outside every symbol (the vDSO, qemu's
 * signal trampolines, gaps) go to "[unknown]". Single-threaded guests only:
 * inline adds are not atomic.
 *
 * At exit COUNTS gets "total N", "base 0x..", "first_tb 0x..", then
 * "COUNT NAME" for every function that ran, largest first.
 *
 * Built against the plugin ABI of Debian's qemu-user 7.2 (API version 1),
 * declarations in qemu_plugin_abi.h (Debian ships no qemu-plugin.h).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_abi.h"

typedef struct { uint64_t start, end; char *name; } Symbol;

static Symbol *symbols;      /* sorted by start, at runtime addresses once base is known */
static size_t n_symbols;
static uint64_t *counts;     /* n_symbols + 1: the last is [unknown] */
static uint64_t entry, base, first_tb;
static int based;
static const char *out_path;

static int by_start(const void *a, const void *b) {
    const Symbol *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int load_symbols(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t cap = 4096;
    symbols = malloc(cap * sizeof *symbols);
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        uint64_t addr, size;
        char name[8192];
        if (sscanf(line, "%" SCNx64 " %" SCNx64 " %8191s", &addr, &size, name) != 3 || size == 0) continue;
        if (n_symbols == cap) symbols = realloc(symbols, (cap *= 2) * sizeof *symbols);
        symbols[n_symbols++] = (Symbol){addr, addr + size, strdup(name)};
    }
    fclose(f);
    qsort(symbols, n_symbols, sizeof *symbols, by_start);
    counts = calloc(n_symbols + 1, sizeof *counts);
    return 0;
}

/* The symbol holding runtime address a, or n_symbols ([unknown]). Aliases
 * (two names, one address) resolve to whichever sorts last: fine for
 * grouping, since aliases are the same code. */
static size_t lookup(uint64_t a) {
    if (a < base) return n_symbols;
    a -= base;
    size_t lo = 0, hi = n_symbols;
    while (lo < hi) {                     /* first symbol with start > a */
        size_t mid = (lo + hi) / 2;
        if (symbols[mid].start <= a) lo = mid + 1; else hi = mid;
    }
    return lo > 0 && a < symbols[lo - 1].end ? lo - 1 : n_symbols;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    if (!based) {
        first_tb = qemu_plugin_tb_vaddr(tb);
        base = qemu_plugin_entry_code() - entry;
        based = 1;
    }
    size_t n = qemu_plugin_tb_n_insns(tb), i = 0;
    while (i < n) {
        struct qemu_plugin_insn *first = qemu_plugin_tb_get_insn(tb, i);
        size_t s = lookup(qemu_plugin_insn_vaddr(first)), j = i + 1;
        while (j < n && lookup(qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, j))) == s) j++;
        qemu_plugin_register_vcpu_insn_exec_inline(first, QEMU_PLUGIN_INLINE_ADD_U64, &counts[s], j - i);
        i = j;
    }
}

static int by_count(const void *a, const void *b) {
    uint64_t x = counts[*(const size_t *)a], y = counts[*(const size_t *)b];
    return x > y ? -1 : x < y;
}

static void at_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id; (void)userdata;
    uint64_t total = 0;
    size_t *order = malloc((n_symbols + 1) * sizeof *order), m = 0;
    for (size_t i = 0; i <= n_symbols; i++) {
        total += counts[i];
        if (counts[i]) order[m++] = i;
    }
    qsort(order, m, sizeof *order, by_count);
    FILE *f = fopen(out_path, "w");
    if (!f) { qemu_plugin_outs("insn_by_symbol: cannot write out=\n"); return; }
    fprintf(f, "total %" PRIu64 "\nbase 0x%" PRIx64 "\nfirst_tb 0x%" PRIx64 "\n", total, base, first_tb);
    for (size_t k = 0; k < m; k++)
        fprintf(f, "%" PRIu64 " %s\n", counts[order[k]], order[k] == n_symbols ? "[unknown]" : symbols[order[k]].name);
    fclose(f);
    char line[64];
    snprintf(line, sizeof line, "fips-insn-count: %" PRIu64 "\n", total);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    const char *syms = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "symbols=", 8)) syms = argv[i] + 8;
        else if (!strncmp(argv[i], "entry=", 6)) entry = strtoull(argv[i] + 6, NULL, 0);
        else if (!strncmp(argv[i], "out=", 4)) out_path = argv[i] + 4;
    }
    if (!syms || !out_path || load_symbols(syms) != 0) {
        fprintf(stderr, "insn_by_symbol: needs symbols=FILE (readable), entry=E_ENTRY, out=FILE\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
