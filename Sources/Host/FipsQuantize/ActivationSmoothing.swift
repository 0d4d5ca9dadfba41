import Foundation
import FipsArtifact
import FipsHostModel

/// SmoothQuant (Xiao et al., 2023) folded into the float model before
/// quantisation. ViT activations have a few channels tens of times larger
/// than the rest; one per-tensor int8 scale must either clip them or waste
/// its levels on them. Dividing input channel j by s_j and multiplying the
/// weight's column j by s_j leaves the product unchanged and moves the
/// outliers into the weights, which have a scale per output channel.
/// s_j = max|x_j|^α / max|W[:, j]|^(1−α).
///
/// The division must be free at run time, so it is folded into what
/// produces the input:
/// - qkv input = LayerNorm 1 output: into norm1's weight and bias;
/// - fc1 input (dense MLPs) = LayerNorm 2 output: into norm2's weight and bias;
/// - proj input = attention output, linear in V: into the value rows of qkv.
/// fc2's input is GELU's output and a FiPS basis is shared by blocks with
/// different LayerNorms, so those stay as they are.
public enum ActivationSmoothing {
    /// Rescales `model` in place from the channel maxima of a calibration
    /// pass over the unsmoothed model; returns the layers smoothed.
    @discardableResult
    public static func apply(_ model: inout ViTModel, statistics: [String: InputStatistics], alpha: Float = 0.5) -> [String] {
        let c = model.config, d = c.dim
        var done = [String]()

        /// Scales for a weight [rows, cols] whose input channel maxima are `a`.
        func factors(_ a: [Float], weight w: HostTensor, rows: Range<Int>) -> [Float] {
            let cols = w.shape[1]
            return (0..<cols).map { j in
                var wmax: Float = 0
                for r in rows { wmax = max(wmax, abs(w.data[r * cols + j])) }
                guard a[j] > 0, wmax > 0 else { return 1 }
                let s = powf(a[j], alpha) / powf(wmax, 1 - alpha)
                return s.isFinite ? min(max(s, 1e-4), 1e4) : 1
            }
        }
        func scaleColumns(_ name: String, _ s: [Float]) {
            var w = model[name]
            let cols = w.shape[1]
            for r in 0..<w.shape[0] { for j in 0..<cols { w.data[r * cols + j] *= s[j] } }
            model.tensors[name] = w
        }
        func divide(_ name: String, _ s: [Float], offset: Int = 0, rowLength: Int = 1) {
            var t = model[name]
            for j in 0..<s.count { for k in 0..<rowLength { t.data[(offset + j) * rowLength + k] /= s[j] } }
            model.tensors[name] = t
        }

        for i in 0..<c.depth {
            func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
            // proj first: it rescales qkv's value rows, which the qkv step's
            // column scaling commutes with.
            if let st = statistics[n("attn.proj")] {
                let s = factors(st.channelAbsMax, weight: model[n("attn.proj.weight")], rows: 0..<d)
                divide(n("attn.qkv.weight"), s, offset: 2 * d, rowLength: d)
                divide(n("attn.qkv.bias"), s, offset: 2 * d)
                scaleColumns(n("attn.proj.weight"), s)
                done.append(n("attn.proj"))
            }
            if let st = statistics[n("attn.qkv")] {
                let s = factors(st.channelAbsMax, weight: model[n("attn.qkv.weight")], rows: 0..<(3 * d))
                divide(n("norm1.weight"), s)
                divide(n("norm1.bias"), s)
                scaleColumns(n("attn.qkv.weight"), s)
                done.append(n("attn.qkv"))
            }
            if !model.isFactorised(block: i), let st = statistics[n("mlp.fc1")] {
                let s = factors(st.channelAbsMax, weight: model[n("mlp.fc1.weight")], rows: 0..<c.mlpDim)
                divide(n("norm2.weight"), s)
                divide(n("norm2.bias"), s)
                scaleColumns(n("mlp.fc1.weight"), s)
                done.append(n("mlp.fc1"))
            }
        }
        return done
    }
}
