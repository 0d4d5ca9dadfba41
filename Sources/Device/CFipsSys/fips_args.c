// getopt_long for the device programs: see include/fips_args.h. glibc's
// parser (linked anyway, static in the aarch64 programs) instead of a
// hand-written one, so the grammar is the one users know from GNU tools.
#define _GNU_SOURCE
#include "fips_args.h"
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int fips_parse_args(int argc, char **argv, int nlong, const char *const *long_names, const int *long_takes,
                    const int *long_flag, const char *shorts, const int *short_flag,
                    int *kinds, const char **values, int *flags, int max_items) {
    struct option *opts = calloc((size_t)nlong + 1, sizeof *opts);
    size_t ns = strlen(shorts);
    char *spec = malloc(ns + 3);
    if (!opts || !spec) { free(opts); free(spec); return -1; }
    for (int i = 0; i < nlong; i++) {
        opts[i].name = long_names[i];
        opts[i].has_arg = long_takes[i] ? required_argument : no_argument;
        opts[i].val = 256 + i;
    }
    // "-": arguments come back in order as option 1; ":": a missing value is ':', not '?'.
    spec[0] = '-'; spec[1] = ':';
    memcpy(spec + 2, shorts, ns + 1);
    static char typed[3];
    int n = 0, c, li = 0, overflow = 0;
    optind = 0;    // glibc: 0 re-initialises the parser, so a table may parse again
    opterr = 0;
    while ((c = getopt_long(argc, argv, spec, opts, &li)) != -1) {
        if (n == max_items) { overflow = 1; break; }
        flags[n] = -1;
        values[n] = NULL;
        if (c == 1) {
            kinds[n] = FIPS_ARG_POSITIONAL; values[n] = optarg;
        } else if (c >= 256) {
            kinds[n] = long_flag[c - 256]; values[n] = optarg;
        } else if (c == '?' || c == ':') {
            int missing = c == ':';
            kinds[n] = missing ? FIPS_ARG_MISSING_VALUE : FIPS_ARG_UNKNOWN;
            if (optopt >= 256) {
                flags[n] = long_flag[optopt - 256];
            } else if (optopt != 0) {
                const char *at = strchr(shorts, optopt);
                if (missing && at) flags[n] = short_flag[at - shorts];
                typed[0] = '-'; typed[1] = (char)optopt; typed[2] = 0;
                values[n] = typed;
            } else {
                values[n] = argv[optind - 1];    // an unknown or ambiguous long option, as typed
            }
            n++;
            free(opts); free(spec);
            return n;
        } else {
            const char *at = strchr(shorts, c);
            kinds[n] = at ? short_flag[at - shorts] : FIPS_ARG_UNKNOWN;
            values[n] = optarg;
        }
        n++;
    }
    // After "--": the rest are arguments.
    while (!overflow && optind < argc) {
        if (n == max_items) { overflow = 1; break; }
        kinds[n] = FIPS_ARG_POSITIONAL; values[n] = argv[optind++]; flags[n] = -1; n++;
    }
    free(opts); free(spec);
    return overflow ? -1 : n;
}
