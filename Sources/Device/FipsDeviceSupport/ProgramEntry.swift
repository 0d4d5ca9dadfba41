/// The device programs' C argv as Swift strings, without the program name.
/// Each program exports an `@_cdecl("<program>_entry")` function that the
/// cross-build's generated C main() calls (boards/build); it hands its
/// (argc, argv) to this and its own main function to the result.
public func programArguments(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> [String] {
    var args = [String]()
    var i = 1
    while i < Int(argc) {
        if let p = argv[i] { args.append(String(cString: p)) }
        i += 1
    }
    return args
}
