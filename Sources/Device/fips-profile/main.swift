#if canImport(Glibc)
import Glibc
#endif
import FipsProfiler

// The cross-built program enters through `fips_profile_entry` from a C main
// (boards/build); the host build starts here with the same arguments.
exit(profileMain(Array(CommandLine.arguments.dropFirst())))
