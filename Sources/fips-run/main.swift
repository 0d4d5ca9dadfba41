#if canImport(Glibc)
import Glibc
#endif
import FipsRunner

exit(fipsRunMain(CommandLine.argc, CommandLine.unsafeArgv))
