// Command lines through glibc's getopt_long, for the device programs' flag
// tables (FipsDeviceSupport's FlagTable): --opt=value, --opt value, "--",
// bundled short options and unambiguous abbreviations behave as in every GNU tool.
#ifndef FIPS_ARGS_H
#define FIPS_ARGS_H

#ifdef __cplusplus
extern "C" {
#endif

// What fips_parse_args found at one place of the command line.
enum { FIPS_ARG_POSITIONAL = -1, FIPS_ARG_UNKNOWN = -2, FIPS_ARG_MISSING_VALUE = -3 };

// Parses argv[1..argc) (argv[0] is the program name). Long options: nlong
// names without "--" (long_names), whether each takes a value (long_takes)
// and the flag each one is (long_flag). Short options: a getopt string
// without the leading "-:" (e.g. "vo:"), and the flag of each letter in it
// (short_flag, indexed like the letters). Writes, in command-line order, one
// entry per option or argument: kinds[k] is the flag, or FIPS_ARG_POSITIONAL
// (values[k]: the argument); parsing stops at the first FIPS_ARG_UNKNOWN
// (values[k]: the option as typed) or FIPS_ARG_MISSING_VALUE (flags[k]: the
// flag). Everything after "--" is positional. Returns the entry count, or -1
// when max_items is too small. Not thread-safe (getopt's globals).
int fips_parse_args(int argc, char **argv, int nlong, const char *const *long_names, const int *long_takes,
                    const int *long_flag, const char *shorts, const int *short_flag,
                    int *kinds, const char **values, int *flags, int max_items);

#ifdef __cplusplus
}
#endif
#endif
