#if canImport(Glibc)
import Glibc
#endif
import FipsRunner

// The cross-built program enters through `fips_run_entry` from a C main
// (boards/build); the host build starts here with the same arguments.
exit(runMain(Array(CommandLine.arguments.dropFirst())))
