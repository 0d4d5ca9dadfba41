import FipsArtifact
import FipsHostModel

/// Loads an artifact back into a host `ViTModel`: integer weights are
/// dequantised, the transposed factors of a quantised FiPS MLP (fc1.Ut,
/// fc1.Vt) are turned back into fc1.U and fc1.V, activation scales dropped.
public enum ArtifactReaderHost {
    public struct LoadError: Error, CustomStringConvertible { public var description: String }

    public static func load(path: String) throws -> ViTModel {
        let a: Artifact
        do { a = try Artifact(path: path) } catch { throw LoadError(description: error.message) }
        return load(a)
    }

    /// The host model of an artifact already opened (and checksummed).
    public static func load(_ a: Artifact) -> ViTModel {
        var tensors = [String: HostTensor]()
        for t in a.tensors {
            let n = t.elementCount
            var values = [Float](repeating: 0, count: n)
            switch t.dtype {
            case .f32:
                for i in 0..<n { values[i] = t.floats[i] }
            case .i8RowScaled:
                let cols = n / t.shape[0]
                for r in 0..<t.shape[0] {
                    let s = t.scales![r]
                    for c in 0..<cols { values[r * cols + c] = s * Float(t.int8s[r * cols + c]) }
                }
            case .f32CSR:
                let cols = t.shape[1]
                for r in 0..<t.shape[0] {
                    for p in Int(t.csrRowStart![r])..<Int(t.csrRowStart![r + 1]) {
                        values[r * cols + Int(t.csrColIndex![p])] = t.floats[p]
                    }
                }
            case .q8, .q4g32, .q3g32, .q8sparse, .q2g32:
                values = PackedWeights.unpack(t)!.dequantized()
            }
            if t.name.hasSuffix(".act_scale") { continue }
            if t.name.hasSuffix(".Ut") || t.name.hasSuffix(".Vt") {
                let rows = t.shape[0], cols = t.shape[1]
                var tr = [Float](repeating: 0, count: n)
                for r in 0..<rows { for c in 0..<cols { tr[c * rows + r] = values[r * cols + c] } }
                tensors[String(t.name.dropLast())] = HostTensor(shape: [cols, rows], data: tr)
                continue
            }
            tensors[t.name] = HostTensor(shape: t.shape, data: values)
        }
        return ViTModel(config: a.config, tensors: tensors, labels: a.labels)
    }
}
