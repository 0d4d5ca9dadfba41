/*
 * A QEMU TCG plugin that counts guest instructions executed: the repeatable
 * proxy for cost on ARM used by Benchmarks/int8_vs_onnxruntime.py. Each
 * translated block adds its instruction count to one counter every time it
 * runs (an inline add, so counting costs little). Single-threaded guests only
 * (inline adds are not atomic): run fips-run with --threads 1.
 *
 * Built against the plugin ABI of Debian's qemu-user 7.2 (API version 1); the
 * few declarations it needs are in qemu_plugin_abi.h because Debian ships no
 * qemu-plugin.h.
 *
 *   gcc -shared -fPIC -O2 -o insn_count.so insn_count.c
 *   qemu-aarch64 -cpu cortex-a72 -d plugin -plugin ./insn_count.so ./fips-run ...
 * prints "fips-insn-count: N" to stderr at exit (qemu_plugin_outs writes to
 * the log, which -d plugin turns on).
 */
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

#include "qemu_plugin_abi.h"

static uint64_t executed;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             (uint64_t)qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id; (void)userdata;
    char line[64];
    snprintf(line, sizeof line, "fips-insn-count: %llu\n", (unsigned long long)executed);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info; (void)argc; (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
