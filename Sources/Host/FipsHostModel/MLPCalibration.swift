/// Per block, the MLP's input (LN2 output) and output (before LayerScale) in
/// the original model, [N, dim] each, the same N rows (recorded tokens) for
/// every block: the teacher-forcing data of block-wise reconstruction.
/// `CalibrationRecorder` (FipsData) records it, `FipsCompressor` (FipsCompress)
/// and the planner read it; it lives here so neither module needs the other.
public struct MLPCalibration {
    /// Per block, [N, dim].
    public var inputs: [HostTensor]
    /// Per block, [N, dim].
    public var outputs: [HostTensor]

    public init(inputs: [HostTensor], outputs: [HostTensor]) {
        self.inputs = inputs
        self.outputs = outputs
    }

    /// Bytes held by the recorded floats.
    public var bytes: Int { 4 * (inputs.reduce(0) { $0 + $1.count } + outputs.reduce(0) { $0 + $1.count }) }
}
