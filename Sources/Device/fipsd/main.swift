#if canImport(Glibc)
import Glibc
#endif
import FipsDaemon

// The cross-built program enters through `fipsd_entry` from a C main
// (boards/build); the host build starts here with the same arguments.
exit(daemonMain(Array(CommandLine.arguments.dropFirst())))
