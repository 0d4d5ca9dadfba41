import FipsKernels

/// The `--integer-nonlinear` spellings (fips-run, fipsd, fips eval,
/// fips-profile): a comma-separated list of softmax, gelu, layernorm, all.
/// Kept apart from ExecutorOptions so the options carry no CLI text.
extension ExecutorOptions {
    /// Switches the non-linearities named in `list` to their integer forms;
    /// returns the first name it does not know, nil when all are known.
    public mutating func selectIntegerNonlinearities(_ list: String) -> String? {
        for part in list.split(separator: ",") {
            switch part {
            case "all": softmax = .integer; gelu = .integer; layerNorm = .integer
            case "softmax": softmax = .integer
            case "gelu": gelu = .integer
            case "layernorm": layerNorm = .integer
            default: return String(part)
            }
        }
        return nil
    }
}
