import CFipsSys

/// What every program says for `--version` and fipsd publishes as
/// fipsd_build_info: the kit's version, the git revision it was built from,
/// the build mode, and the CPU and board it was compiled for.
public enum BuildInfo {
    /// The kit's release; one number for all five programs.
    public static let version = "0.2.0"
    public static var revision: String { String(cString: fips_build_revision()) }
    public static var mode: String { String(cString: fips_build_mode()) }
    public static var cpu: String { String(cString: fips_build_cpu()) }
    public static var board: String { String(cString: fips_build_board()) }

    /// "fipsd 0.2.0 (revision baf0514, release build for aarch64+dotprod, board rpi5)"
    public static func versionLine(_ program: String) -> String {
        "\(program) \(version) (revision \(revision), \(mode) build for \(cpu), board \(board))"
    }
}
