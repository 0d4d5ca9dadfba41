import Foundation
import FipsArtifact
import FipsHostModel

/// A host ViT (an fp32, FiPS-compressed or dequantised artifact) as an ONNX
/// model with float weights and standard opset-17 operators, computing what
/// the kit's float forward pass computes (ViTExecutor):
///
///   input  `pixel_values`      [1, C, S, S] float, preprocessed as metadata_props say
///   output `last_hidden_state` [1, T, d]    the final LayerNorm of every token
///          `embedding`         [1, d]       its CLS row (fips-run --embedding)
///          `logits`            [1, classes] when the model has a head
///
/// A FiPS MLP stays factorised: fc1 is MatMul by the shared basis U then by
/// the block's projection V (stored dense), fc2 by Vᵀ then by Uᵀ; the basis
/// is one initializer that every block of its group names.
public struct ONNXExporter {
    public struct Summary {
        public var nodes, initializers, sharedInitializerUses, bytes: Int
    }

    public static let opset = 17

    let model: ViTModel
    let graph = ONNXGraphBuilder()
    var config: ViTConfig { model.config }

    init(_ model: ViTModel) { self.model = model }

    /// The serialized ModelProto; `metadata` is added to metadata_props after the model's own keys.
    public static func serialize(_ model: ViTModel, producerVersion: String, metadata: [(String, String)] = []) -> ([UInt8], Summary) {
        ONNXExporter(model).build(producerVersion: producerVersion, metadata: metadata)
    }

    /// Builds the graph once (the exporter is used for one model only).
    func build(producerVersion: String, metadata: [(String, String)]) -> ([UInt8], Summary) {
        let c = config
        var x = embed()
        for i in 0..<c.depth { x = block(i, x) }
        let outputs = heads(x)
        let g = graph.proto(name: "fips_vit", inputs: [ONNXProto.valueInfo(name: "pixel_values", dims: [1, c.channels, c.imageSize, c.imageSize])],
                            outputs: outputs.map { ONNXProto.valueInfo(name: $0.0, dims: $0.1) })
        let bytes = ONNXProto.model(graph: g, opset: ONNXExporter.opset, producerVersion: producerVersion,
                                    metadata: modelMetadata() + metadata)
        return (bytes, Summary(nodes: graph.nodes.count, initializers: graph.initializers.count,
                               sharedInitializerUses: graph.sharedInitializerUses, bytes: bytes.count))
    }

    func tensor(_ name: String) -> HostTensor { model[name] }
    func vector(_ name: String) -> [Float] { model[name].data }
    func matrix(_ name: String) -> HostMatrix {
        let t = model[name]
        return HostMatrix(rows: t.shape[0], cols: t.shape[1], data: t.data)
    }

    /// Conv with stride P (patch_embed.weight [d, C·P·P] is already (channel, ky, kx), i.e. OIHW),
    /// flattened to tokens, CLS (and distillation) token in front, position embedding added.
    func embed() -> String {
        let c = config, d = c.dim, P = c.patchSize, p = "embeddings"
        let w = graph.floats(TensorNames.patchWeight, [d, c.channels, P, P], vector(TensorNames.patchWeight))
        let b = graph.floats(TensorNames.patchBias, [d], vector(TensorNames.patchBias))
        let conv = graph.node("Conv", ["pixel_values", w, b], [.ints("kernel_shape", [P, P]), .ints("strides", [P, P])], prefix: p)
        let flat = graph.node("Reshape", [conv, graph.int64s("shape_patches", [1, d, c.patchCount])], prefix: p)
        let tokens = graph.node("Transpose", [flat], [.ints("perm", [0, 2, 1])], prefix: p)
        let cls = graph.floats(TensorNames.clsToken, [1, 1, d], vector(TensorNames.clsToken))
        var prefixTokens = [cls]
        if c.hasDistillationToken {
            prefixTokens.append(graph.floats(TensorNames.distToken, [1, 1, d], vector(TensorNames.distToken)))
        }
        let all = graph.node("Concat", prefixTokens + [tokens], [.int("axis", 1)], prefix: p)
        let pos = graph.floats(TensorNames.posEmbed, [1, c.tokenCount, d], vector(TensorNames.posEmbed))
        return graph.node("Add", [all, pos], prefix: p)
    }

    func layerNorm(_ x: String, _ name: String, prefix: String, output: String? = nil) -> String {
        let d = config.dim
        return graph.node("LayerNormalization",
                          [x, graph.floats(name + ".weight", [d], vector(name + ".weight")), graph.floats(name + ".bias", [d], vector(name + ".bias"))],
                          [.int("axis", -1), .float("epsilon", config.layerNormEps)], prefix: prefix, output: output)
    }

    /// x + ls1·attn(LN1(x)), then + ls2·MLP(LN2(·)).
    func block(_ i: Int, _ x: String) -> String {
        let p = "blocks.\(i)"
        let a = attention(i, layerNorm(x, p + ".norm1", prefix: p))
        let x1 = graph.node("Add", [x, layerScale(a, p + ".ls1", prefix: p)], prefix: p)
        let m = mlp(i, layerNorm(x1, p + ".norm2", prefix: p))
        return graph.node("Add", [x1, layerScale(m, p + ".ls2", prefix: p)], prefix: p)
    }

    func layerScale(_ y: String, _ name: String, prefix: String) -> String {
        guard config.hasLayerScale else { return y }
        return graph.node("Mul", [y, graph.floats(name, [config.dim], vector(name))], prefix: prefix)
    }

    /// Multi-head attention: q, k, v from qkv's three row blocks, softmax(q·kᵀ/√hd)·v per head, proj.
    func attention(_ i: Int, _ h: String) -> String {
        let c = config, d = c.dim, T = c.tokenCount, H = c.heads, hd = c.headDim, p = "blocks.\(i).attn"
        let qkv = matrix(p + ".qkv.weight"), bias = vector(p + ".qkv.bias")
        let headsShape = graph.int64s("\(p).shape_heads", [1, T, H, hd])
        func part(_ k: Int, _ leaf: String, perm: [Int]) -> String {
            let w = HostMatrix(rows: d, cols: d, data: Array(qkv.data[(k * d * d)..<((k + 1) * d * d)]))
            let y = graph.linear(h, weight: w, bias: Array(bias[(k * d)..<((k + 1) * d)]), name: "\(p).\(leaf)", prefix: p)
            return graph.node("Transpose", [graph.node("Reshape", [y, headsShape], prefix: p)], [.ints("perm", perm)], prefix: p)
        }
        let q = part(0, "q", perm: [0, 2, 1, 3]), kT = part(1, "k", perm: [0, 2, 3, 1]), v = part(2, "v", perm: [0, 2, 1, 3])
        let scores = graph.node("Mul", [graph.node("MatMul", [q, kT], prefix: p), graph.scalar(1 / Float(hd).squareRoot())], prefix: p)
        let probs = graph.node("Softmax", [scores], [.int("axis", -1)], prefix: p)
        let ctx = graph.node("Transpose", [graph.node("MatMul", [probs, v], prefix: p)], [.ints("perm", [0, 2, 1, 3])], prefix: p)
        let merged = graph.node("Reshape", [ctx, graph.int64s("\(p).shape_merge", [1, T, d])], prefix: p)
        return graph.linear(merged, weight: matrix(p + ".proj.weight"), bias: vector(p + ".proj.bias"), name: p + ".proj", prefix: p)
    }
}
