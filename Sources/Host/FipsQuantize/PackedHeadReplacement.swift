import FipsArtifact
import FipsArtifactWriter

/// Puts a newly trained head into a packed (version 2) artifact and copies
/// every other tensor byte for byte. Going through `ViTModel` would
/// dequantise the backbone and write it back as fp32: a 20 MB plan would
/// come out as an 86 MB file and no longer fit the board it was planned for.
public enum PackedHeadReplacement {
    public struct Result {
        public var bytes: [UInt8]
        /// How the head is stored: the old head's packed format, or f32.
        public var headFormat: String
        public var headBytes: Int
    }

    /// `weight` [classes, dim], `bias` [classes]; `headInput` [count, dim]:
    /// the features the head was trained on, which also calibrate its static
    /// input scale when the old head had one.
    public static func serialize(_ a: Artifact, weight: [Float], bias: [Float], labels: [String],
                                 pooling: ViTConfig.HeadPooling, headInput: [Float], count: Int) -> Result {
        let classes = bias.count, dim = weight.count / max(1, classes)
        precondition(classes > 0 && weight.count == classes * dim && labels.count == classes)
        precondition(dim == (pooling == .cls ? a.config.dim : 2 * a.config.dim), "head width does not match the pooling")
        precondition(headInput.count == count * dim)
        let old = a.tensor(TensorNames.headWeight)
        let oldScaleName = QuantizedTensor.actScaleName(for: TensorNames.headWeight)
        let headNames: Set = [TensorNames.headWeight, TensorNames.headBias, oldScaleName]
        var tensors = a.tensors.filter { !headNames.contains($0.name) }.map(ArtifactWriter.verbatim)
        var config = a.config
        config.numClasses = classes
        config.headPooling = pooling
        var head: [EncodedTensor]
        if let bits = old?.dtype.weightBits {
            // The same bit-width as the head it replaces: the plan priced that size.
            let q = WeightQuantizer.quantize(weight, rows: classes, cols: dim, bits: bits, rounding: .nearest)
            let dtype = PackedWeights.denseType(bits: bits)
            let packed = PackedWeights.pack(PackedWeights.Logical(bits: bits, rows: classes, cols: dim, values: q.values, scales: q.scales),
                                            as: dtype)
            // A static input scale only where the old head had one, calibrated on the training features.
            var scale: Float? = nil
            if a.tensor(oldScaleName) != nil {
                let stats = InputStatistics(cols: dim, hessian: false)
                headInput.withUnsafeBufferPointer { stats.observe($0.baseAddress!, rows: count, cols: dim) }
                scale = ActivationCalibrator.range(stats, method: .mse).scale
            }
            head = ArtifactWriter.encode(QuantizedTensor(storedName: TensorNames.headWeight, shape: [classes, dim],
                                                         packed: packed, actScale: scale))
        } else {
            head = [EncodedTensor(name: TensorNames.headWeight, dtype: .f32, shape: [classes, dim],
                                  data: ArtifactWriter.bytes(of: weight), aux: [])]
        }
        head.append(EncodedTensor(name: TensorNames.headBias, dtype: .f32, shape: [classes],
                                  data: ArtifactWriter.bytes(of: bias), aux: []))
        tensors += head
        return Result(bytes: ArtifactWriter.serialize(config: config, labels: labels, tensors: tensors, version: a.version),
                      headFormat: head[0].dtype.name, headBytes: head.reduce(0) { $0 + $1.data.count + $1.aux.count })
    }
}
