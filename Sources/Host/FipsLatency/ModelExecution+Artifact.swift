import FipsArtifact

/// Why an artifact could not be described as a ModelExecution.
public struct ModelExecutionError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

extension ModelExecution {
    /// What each block of a `.fips` stores, as the executor will run it:
    /// the attention weights' dtype, and a dense MLP's dtype or a FiPS MLP's
    /// rank, basis and projection dtypes and the pruned fraction of its
    /// projections (zeros elided by q8-sparse / f32-csr, counted over fc1's
    /// and fc2's V together). `integerNonlinear` is not stored in a model
    /// (it is a runtime option) and is false.
    public init(artifact a: Artifact) throws {
        let c = a.config
        func t(_ name: String) throws -> TensorView {
            guard let v = a.tensor(name) else { throw ModelExecutionError(path: a.path, reason: "missing tensor \(name)") }
            return v
        }
        func zeros(_ views: [TensorView]) -> Double {
            var stored = 0, total = 0
            for v in views {
                total += v.elementCount
                stored += (v.dtype == .q8sparse || v.dtype == .f32CSR) ? v.storedValues : v.elementCount
            }
            return total == 0 ? 0 : max(0, 1 - Double(stored) / Double(total))
        }
        var blocks = [BlockExecution]()
        for i in 0..<c.depth {
            func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
            let qkv = try t(n("attn.qkv.weight"))
            let mlp: BlockExecution.MLP
            if let ut = a.tensor(n("mlp.fc1.Ut")) {
                let vt = try t(n("mlp.fc1.Vt")), v2 = try t(n("mlp.fc2.V"))
                guard ut.shape.count == 2 else { throw ModelExecutionError(path: a.path, reason: "\(ut.name) is not a matrix") }
                mlp = .fips(rank: ut.shape[0], basis: ut.dtype, projections: vt.dtype, projectionSparsity: zeros([vt, v2]))
            } else if let u = a.tensor(n("mlp.fc1.U")) {
                let v1 = try t(n("mlp.fc1.V")), v2 = try t(n("mlp.fc2.V"))
                guard u.shape.count == 2 else { throw ModelExecutionError(path: a.path, reason: "\(u.name) is not a matrix") }
                mlp = .fips(rank: u.shape[1], basis: u.dtype, projections: v1.dtype, projectionSparsity: zeros([v1, v2]))
            } else {
                mlp = .dense(try t(n("mlp.fc1.weight")).dtype)
            }
            blocks.append(BlockExecution(attention: qkv.dtype, mlp: mlp))
        }
        self.init(config: c, blocks: blocks, integerNonlinear: false)
    }

    /// The executor runs attention's Q·Kᵀ and P·V in int8 when any linear
    /// map has packed integer weights (ExecutorOptions.integerAttention's default).
    public var hasPackedWeights: Bool {
        blocks.contains { b in
            if b.attention.weightBits != nil { return true }
            switch b.mlp {
            case .dense(let d): return d.weightBits != nil
            case .fips(_, let u, let v, _): return u.weightBits != nil || v.weightBits != nil
            }
        }
    }
}
