/// The device programs' command lines (fips-run, fipsd, fips-profile): each
/// declares a table of flags and this parses it. Hand-rolled because
/// swift-argument-parser does not build as Embedded Swift.

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

    /// Left to right; the first error or `--help` ends it.
    public func parse(_ args: [String]) -> ParsedArguments<Options> {
        var o = defaults
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "-h" || a == "--help" { return .help }
            if a == "--version" { return .version }
            if let f = flags.first(where: { $0.names.contains(a) }) {
                var v = ""
                if f.takesValue {
                    i += 1
                    guard i < args.count else { return .failure(f.missing) }
                    v = args[i]
                }
                if let e = f.apply(&o, v) { return .failure(e) }
            } else if a.utf8.first == 45 && !(loneDashIsArgument && a.utf8.count == 1) {
                return .failure("unknown option \(a)")
            } else if let e = argument(&o, a) {
                return .failure(e)
            }
            i += 1
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
            return 2
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
