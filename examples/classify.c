/* examples/classify.c: the kit's runtime from C (include/fips.h).
 *
 *   classify MODEL.fips [--top-k K] [--embedding] IMAGE...
 *
 * One JSON line per image, as fips-run prints it: "top" (labels and softmax
 * scores) for a model with a head, "embedding" (the CLS feature) when asked.
 * A file that cannot be decoded is one line on stderr; the exit status is
 * then 1 (0 when every image ran, 2 for a bad command line, 3 for a model
 * that cannot be opened), the kit's table.
 *
 * Host:    swift build -c release --product fips-c
 *          cc examples/classify.c -Iinclude -L.build/release -lfips-c -Wl,-rpath,$PWD/.build/release -o classify
 * aarch64: ./boards/build rpi5
 *          aarch64-linux-gnu-gcc -static-pie -Wl,--gc-sections examples/classify.c -Ibuild/rpi5 build/rpi5/libfips.a -lm -o classify
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fips.h"

int main(int argc, char **argv) {
    int top_k = 5, embedding = 0, first = 2;
    if (argc < 3) {
        fprintf(stderr, "usage: classify MODEL.fips [--top-k K] [--embedding] IMAGE...\n");
        return 2;
    }
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first++) {
        if (strcmp(argv[first], "--embedding") == 0) embedding = 1;
        else if (strcmp(argv[first], "--top-k") == 0 && first + 1 < argc) top_k = atoi(argv[++first]);
        else { fprintf(stderr, "classify: unknown option %s\n", argv[first]); return 2; }
    }
    if (top_k < 1) { fprintf(stderr, "classify: --top-k needs a positive count\n"); return 2; }
    char err[256];
    fips_model *m = fips_open(argv[1], 0, err, sizeof err);
    if (!m) { fprintf(stderr, "classify: %s\n", err); return 3; }
    int classes = fips_num_classes(m), dim = fips_embedding_dim(m), failed = 0;
    int *idx = malloc(sizeof(int) * (size_t)top_k);
    float *score = malloc(sizeof(float) * (size_t)top_k), *emb = malloc(sizeof(float) * (size_t)dim);
    for (int i = first; i < argc; i++) {
        if (fips_run_file(m, argv[i]) != FIPS_OK) {
            fprintf(stderr, "classify: %s\n", fips_error(m));
            failed = 1;
            continue;
        }
        printf("{\"image\": \"%s\"", argv[i]);   /* a path with quotes would need escaping: an example */
        if (embedding) {
            fips_embedding(m, emb, dim);
            printf(", \"embedding\": [");
            for (int k = 0; k < dim; k++) printf("%s%.9g", k ? ", " : "", emb[k]);
            printf("]");
        }
        if (classes > 0) {
            int n = fips_top_k(m, top_k, idx, score);
            printf(", \"top\": [");
            for (int k = 0; k < n; k++)
                printf("%s{\"label\": \"%s\", \"score\": %.6g}", k ? ", " : "", fips_label(m, idx[k]), score[k]);
            printf("]");
        }
        printf("}\n");
    }
    free(idx); free(score); free(emb);
    fips_close(m);
    return failed;
}
