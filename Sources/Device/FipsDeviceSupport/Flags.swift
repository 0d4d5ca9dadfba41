import CFipsSys

/// The device programs' command lines (fips-run, fipsd, fips-profile): each
/// declares a table of flags, and glibc's getopt_long parses them (the same
/// grammar as the host tools' swift-argument-parser, which does not build as
/// Embedded Swift).

/// One flag: its spellings, and what it does to the options.
public struct Flag<Options> {
    let names: [String]
    let takesValue: Bool
    /// The error when the value is missing.
    let missing: String
    /// Applies the value ("" for a flag without one); returns an error message or nil.
    let apply: (inout Options, String) -> String?

    /// A flag without a value, e.g. `--verbose`.
    public static func set(_ names: String..., apply: @escaping (inout Options) -> Void) -> Flag {
        Flag(names: names, takesValue: false, missing: "", apply: { o, _ in apply(&o); return nil })
    }

    /// A flag with a value; `apply` returns an error message or nil.
    public static func value(_ names: String..., missing: String,
                             apply: @escaping (inout Options, String) -> String?) -> Flag {
        Flag(names: names, takesValue: true, missing: missing, apply: apply)
    }

    /// A flag with a decimal integer in `range`; a missing or other value gives `error`.
    public static func integer(_ names: String..., in range: ClosedRange<Int>, error: String,
                               apply: @escaping (inout Options, Int) -> Void) -> Flag {
        Flag(names: names, takesValue: true, missing: error, apply: { o, v in
            guard let k = parseInt(v), range.contains(k) else { return error }
            apply(&o, k)
            return nil
        })
    }

    /// A size in bytes (parseByteCount: "8M", "900kB", "1.5GiB", or a bare byte count) in `range`;
    /// "0" too when the range holds it (e.g. --rotate-bytes 0: never).
    public static func bytes(_ names: String..., in range: ClosedRange<Int>, error: String,
                             apply: @escaping (inout Options, Int) -> Void) -> Flag {
        Flag(names: names, takesValue: true, missing: error, apply: { o, v in
            guard let k = v == "0" ? 0 : parseByteCount(v), range.contains(k) else { return error }
            apply(&o, k)
            return nil
        })
    }

    /// A duration with its unit ("10s", "700ms", "2min"; a bare number is refused: seconds or
    /// milliseconds?), applied in milliseconds, in `range`.
    public static func milliseconds(_ names: String..., in range: ClosedRange<Int>, error: String,
                                    apply: @escaping (inout Options, Int) -> Void) -> Flag {
        Flag(names: names, takesValue: true, missing: error, apply: { o, v in
            guard let us = parseDurationMicroseconds(v), us % 1000 == 0, range.contains(us / 1000) else { return error }
            apply(&o, us / 1000)
            return nil
        })
    }
}

/// What a command line asks for.
public enum ParsedArguments<Options> {
    case run(Options)
    case help
    case version
    case failure(String)
}

/// A program's flags, its arguments that are not flags, and the checks of the whole.
/// `-h`, `--help` and `--version` are every program's; anything else starting with '-' that
/// no flag spells is "unknown option".
public struct FlagTable<Options> {
    public let defaults: Options
    public let flags: [Flag<Options>]
    /// A lone "-" is an argument (fips-run: a path), not an unknown option.
    public let loneDashIsArgument: Bool
    /// Takes an argument that is not a flag; returns an error message or nil.
    public let argument: (inout Options, String) -> String?
    /// Checks the parsed options as a whole; returns an error message or nil.
    public let finish: (Options) -> String?

    public init(defaults: Options, flags: [Flag<Options>], loneDashIsArgument: Bool = false,
                argument: @escaping (inout Options, String) -> String?,
                finish: @escaping (Options) -> String? = { _ in nil }) {
        self.defaults = defaults
        self.flags = flags
        self.loneDashIsArgument = loneDashIsArgument
        self.argument = argument
        self.finish = finish
    }

    /// Left to right through glibc's getopt_long (CFipsSys's fips_parse_args):
    /// `--opt value`, `--opt=value`, `-o value`, `-ovalue`, bundled short
    /// switches, unambiguous abbreviations of long names, and `--` before
    /// arguments that start with '-'. The first error, `--help` or `--version` ends it.
    public func parse(_ args: [String]) -> ParsedArguments<Options> {
        let help = flags.count, version = flags.count + 1
        // Every spelling of every flag: long names for getopt_long, letters for its short string.
        var longNames: [String] = ["help", "version"], longTakes: [Int32] = [0, 0], longFlag: [Int32] = [Int32(help), Int32(version)]
        var shorts: [UInt8] = [104], shortFlag: [Int32] = [Int32(help)]   // -h
        for (i, f) in flags.enumerated() {
            for name in f.names {
                let b = Array(name.utf8)
                if b.count > 2 && b[0] == 45 && b[1] == 45 {
                    longNames.append(String(decoding: b[2...], as: UTF8.self))
                    longTakes.append(f.takesValue ? 1 : 0)
                    longFlag.append(Int32(i))
                } else if b.count == 2 && b[0] == 45 {
                    shorts.append(b[1])
                    shortFlag.append(Int32(i))
                    if f.takesValue { shorts.append(58); shortFlag.append(-1) }   // "o:" (the ':' keeps the indices aligned)
                }
            }
        }
        var entries: [(kind: Int, value: String?, flag: Int)] = []
        let capacity = args.reduce(1) { $0 + $1.utf8.count + 1 }
        let n = withCStrings(["fips"] + args) { argv in
            withCStrings(longNames) { names in
                withCStrings([String(decoding: shorts, as: UTF8.self)]) { short in
                    var kinds = [Int32](repeating: 0, count: capacity), fl = [Int32](repeating: 0, count: capacity)
                    var values = [UnsafePointer<CChar>?](repeating: nil, count: capacity)
                    let constNames = UnsafeRawPointer(names).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
                    let n = Int(fips_parse_args(Int32(args.count + 1), argv, Int32(longNames.count), constNames, longTakes, longFlag,
                                                UnsafePointer(short[0]), shortFlag, &kinds, &values, &fl, Int32(capacity)))
                    for k in 0..<max(n, 0) {
                        entries.append((kind: Int(kinds[k]), value: values[k].map { String(cString: $0) }, flag: Int(fl[k])))
                    }
                    return n
                }
            }
        }
        if n < 0 { return .failure("command line too long to parse") }
        var o = defaults
        for e in entries {
            switch e.kind {
            case help: return .help
            case version: return .version
            case Int(FIPS_ARG_UNKNOWN):
                let typed = e.value ?? "?"
                let stem = Array(typed.utf8.drop(while: { $0 == 45 }).prefix(while: { $0 != 61 }))   // "--to=3" -> "to"
                let matches = typed.hasPrefix("--") ? longNames.filter { Array($0.utf8).starts(with: stem) } : []
                if matches.count > 1 {
                    return .failure("ambiguous option \(typed): --" + matches.joined(separator: ", --"))
                }
                return .failure("unknown option \(typed)")
            case Int(FIPS_ARG_MISSING_VALUE):
                return .failure(e.flag >= 0 && e.flag < flags.count ? flags[e.flag].missing : "\(e.value ?? "an option") needs a value")
            case Int(FIPS_ARG_POSITIONAL):
                let a = e.value ?? ""
                if a == "-" && !loneDashIsArgument { return .failure("unknown option -") }
                if let err = argument(&o, a) { return .failure(err) }
            default:
                if let err = flags[e.kind].apply(&o, e.value ?? "") { return .failure(err) }
            }
        }
        if let e = finish(o) { return .failure(e) }
        return .run(o)
    }

    /// Parses `args` and runs `body` with the options. `--help` prints `usage`
    /// and `--version` the build (`BuildInfo`), and both return 0; an error prints "<program>: <message> (see --help)" on
    /// standard error and returns 2.
    public func run(_ args: [String], program: String, usage: String, _ body: (Options) -> Int32) -> Int32 {
        switch parse(args) {
        case .help:
            printLine(usage)
            return 0
        case .version:
            printLine(BuildInfo.versionLine(program))
            return 0
        case .failure(let msg):
            printLine("\(program): \(msg) (see --help)", fd: 2)
            return ExitStatus.usage
        case .run(let o):
            return body(o)
        }
    }
}

/// Parses a decimal integer; nil unless the whole string is digits.
public func parseInt(_ s: String) -> Int? {
    var v = 0
    var any = false
    for b in s.utf8 {
        guard b >= 48 && b <= 57 else { return nil }
        v = v &* 10 &+ Int(b - 48)
        if v > (1 << 40) { return nil }
        any = true
    }
    return any ? v : nil
}

/// `body` with a C array of NUL-terminated copies of `strings` (and a NULL after them).
func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var storage: [CChar] = []
    var offsets: [Int] = []
    for s in strings {
        offsets.append(storage.count)
        for b in s.utf8 { storage.append(CChar(bitPattern: b)) }
        storage.append(0)
    }
    return storage.withUnsafeMutableBufferPointer { buf in
        var ptrs: [UnsafeMutablePointer<CChar>?] = offsets.map { buf.baseAddress! + $0 }
        ptrs.append(nil)
        return ptrs.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}
