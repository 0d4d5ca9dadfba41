import Foundation
import FipsArtifact
import FipsHostModel

/// The position embedding as the source file stores it, before it was
/// resampled to the model's grid.
public struct ImportedPositionEmbedding {
    /// [1 + grid*grid, dim]: row 0 the CLS position, then the grid row-major.
    public var original: HostTensor
    public var grid: Int
    /// How it was (and must be) resized to the model's grid.
    public var mode: PositionEmbeddingResizeMode
}

public struct ONNXImportResult {
    public var model: ViTModel
    public var positionEmbedding: ImportedPositionEmbedding
    /// The final LayerNorm's output: where the backbone ends (a recognised
    /// CLS-pooled linear head may follow; any other consumer is ignored).
    public var backboneOutput: String
}

/// Imports a Vision Transformer from an ONNX graph by its structure, not its
/// node names: the patch-embedding Conv on the image input, the class token
/// and position embedding, then transformer blocks recognised from the data
/// flow (LayerNorm, self-attention, residual Add, LayerNorm, GELU MLP,
/// residual Add, optional LayerScale), the final LayerNorm and an optional
/// CLS-pooled linear head. Works for the TorchScript and dynamo PyTorch
/// exporters (opsets 14-20), Hugging Face and timm layouts, and external
/// data. Anything else is refused naming the node and what was expected.
public enum ONNXImporter {
    public static func load(path: String, options: ImportOptions = .init()) throws -> ViTModel {
        try loadRaw(path: path, options: options).model
    }

    public static func loadRaw(path: String, options: ImportOptions = .init()) throws -> ONNXImportResult {
        let onnx = try ONNXModel(path: path)
        var m = try ONNXPatternMatcher(onnx: onnx, options: options)
        return try m.run()
    }
}

/// A tensor placed in the model, with the node it was found at (for messages).
struct Placed {
    var tensor: ONNXTensor
    var node: String
    /// A linear weight already [out, in] (Gemm transB, or a Transpose of it);
    /// MatMul weights are [in, out].
    var outIn = false
}

/// A Linear layer as exported: MatMul(x, W) (+ Add bias) or Gemm(x, W, b).
struct LinearLayer {
    var weight: Placed
    var bias: Placed?
    var node: Int
    var input: String
    /// After the bias Add when there is one.
    var output: String
    var outDim: Int
    var inDim: Int
    /// The bias Add node, claimed with the MatMul.
    var biasNode: Int?
}

/// One walk along the residual stream from the image input to the head,
/// collecting initializers by role for `assemble()`.
struct ONNXPatternMatcher {
    let onnx: ONNXModel
    let options: ImportOptions
    let path: String
    let g: ONNXGraphIndex

    // Embeddings.
    var conv: (ONNXNode, ONNXTensor, ONNXTensor?)? = nil   // bias nil: zero
    var clsToken: Placed? = nil
    var distToken: Placed? = nil         // distilled DeiT's second prefix token
    var posGrid: ONNXTensor? = nil       // [1, S*S, d], resized in the graph
    var clsPos: ONNXTensor? = nil        // [1, 1, d]
    var posFull: Placed? = nil           // [1, T, d], added as is
    var resize: ONNXNode? = nil
    // Per layer: role -> tensor.
    var layers: [[String: Placed]] = []
    var final: [String: Placed] = [:]
    var epsilons: [(Float, String)] = []
    var gelu: [Int: Bool] = [:]          // layer -> tanh?
    var heads: (Int, Int)? = nil         // (heads, headDim) from layer 0's reshape
    var head: LinearLayer? = nil
    var distillationHead: LinearLayer? = nil   // distilled DeiT: averaged with `head`
    var backboneOutput = ""

    init(onnx: ONNXModel, options: ImportOptions) throws {
        self.onnx = onnx
        self.options = options
        self.path = onnx.path
        self.g = try ONNXGraphIndex(graph: onnx.graph, path: onnx.path)
    }

    func fail(_ s: String) -> ImportError { ImportError(path: path, s) }

    /// The node's description and what the matcher expected there.
    func unexpected(_ i: Int, _ expected: String) -> ImportError {
        fail("\(g.describe(g.node(i))), expected \(expected)")
    }

    mutating func run() throws -> ONNXImportResult {
        for n in g.graph.nodes where !(n.domain.isEmpty || n.domain == "ai.onnx") && g.dataInputs(n).count > 0 {
            throw fail("\(g.describe(n)), an operator outside the standard ONNX domain, which the importer does not understand")
        }
        var x = try matchEmbeddings()
        while true {
            let layer = layers.count
            guard let norm = try matchNorm(at: x) else {
                let c = g.dataConsumers(x).first
                throw c.map { unexpected($0, "a LayerNorm (LayerNormalization, or ReduceMean/Sub/Pow/Sqrt/Div) on the residual stream") }
                    ?? fail("tensor \(x) ends the graph before the final LayerNorm")
            }
            let rest = g.dataConsumers(x).filter { !norm.entry.contains($0) }
            if rest.isEmpty {
                final = ["norm.w": norm.weight]
                final["norm.b"] = norm.bias
                epsilons.append((norm.eps, norm.epsNode))
                try matchHead(after: norm.output)
                break
            }
            var slots: [String: Placed] = ["norm1.w": norm.weight]
            slots["norm1.b"] = norm.bias
            epsilons.append((norm.eps, norm.epsNode))
            let (residual, branch) = try residualAdd(x, rest, layer: layer)
            try matchAttention(layer: layer, from: norm.output, to: branch, into: &slots)
            x = g.node(residual).outputs[0]
            guard let norm2 = try matchNorm(at: x) else {
                throw unexpected(g.dataConsumers(x).first ?? residual, "layer \(layer)'s second LayerNorm after the attention residual Add")
            }
            slots["norm2.w"] = norm2.weight
            slots["norm2.b"] = norm2.bias
            epsilons.append((norm2.eps, norm2.epsNode))
            let (residual2, branch2) = try residualAdd(x, g.dataConsumers(x).filter { !norm2.entry.contains($0) }, layer: layer)
            try matchMLP(layer: layer, from: norm2.output, to: branch2, into: &slots)
            x = g.node(residual2).outputs[0]
            layers.append(slots)
        }
        return try assemble()
    }

    /// The residual Add among the stream's consumers besides its LayerNorm,
    /// and the branch tensor it adds.
    func residualAdd(_ x: String, _ rest: [Int], layer: Int) throws -> (Int, String) {
        guard rest.count == 1 else {
            throw rest.isEmpty ? fail("layer \(layer): tensor \(x) has no residual Add")
                : unexpected(rest[1], "one residual Add and one LayerNorm reading the stream \(x) in layer \(layer)")
        }
        let n = g.node(rest[0])
        guard n.opType == "Add", n.inputs.count == 2, let other = n.inputs.first(where: { $0 != x }), g.isData(other) else {
            throw unexpected(rest[0], "the residual Add of layer \(layer) (stream + branch)")
        }
        return (rest[0], other)
    }

    /// A Linear at node i: MatMul with an initializer weight (+ Add of a
    /// bias initializer), or Gemm; nil when the node is not one.
    func linear(_ i: Int) -> LinearLayer? {
        let n = g.node(i)
        guard n.inputs.count >= 2, g.isData(n.inputs[0]), !g.isData(n.inputs[1]),
              let (w, transposed) = g.weight(n.inputs[1]), w.dims.count == 2 else { return nil }
        if n.opType == "MatMul" {
            let outDim = transposed ? w.dims[0] : w.dims[1], inDim = transposed ? w.dims[1] : w.dims[0]
            var l = LinearLayer(weight: Placed(tensor: w, node: n.name, outIn: transposed), bias: nil, node: i,
                                input: n.inputs[0], output: n.outputs[0], outDim: outDim, inDim: inDim)
            let cons = g.dataConsumers(n.outputs[0])
            if cons.count == 1, g.node(cons[0]).opType == "Add" {
                let a = g.node(cons[0])
                if let b = g.paramInputs(a).first.flatMap({ g.inits[$0] }), b.elementCount == outDim, g.paramInputs(a).count == 1 {
                    l.bias = Placed(tensor: b, node: a.name)
                    l.output = a.outputs[0]
                    l.biasNode = cons[0]
                }
            }
            return l
        }
        guard n.opType == "Gemm", (n.int("transA") ?? 0) == 0, (n.float("alpha") ?? 1) == 1, (n.float("beta") ?? 1) == 1 else { return nil }
        let outIn = (n.int("transB") ?? 0) == 1
        let t = outIn != transposed
        var l = LinearLayer(weight: Placed(tensor: w, node: n.name, outIn: t), bias: nil, node: i, input: n.inputs[0],
                            output: n.outputs[0], outDim: t ? w.dims[0] : w.dims[1], inDim: t ? w.dims[1] : w.dims[0])
        if n.inputs.count > 2, let b = g.inits[n.inputs[2]], b.elementCount == l.outDim { l.bias = Placed(tensor: b, node: n.name) }
        return l
    }

    /// Ops that only move or view data (no arithmetic).
    static let layoutOps: Set<String> = ["Reshape", "Transpose", "Flatten", "Identity", "Squeeze", "Unsqueeze", "Split", "Slice", "Gather", "Cast"]
}
