import Foundation
import FipsArtifact

/// `fips info`'s two outputs: the JSON object (`--json`) and the readable
/// summary with its tensor table. Key names: docs/ARTIFACT.md.
extension ArtifactInfo {
    public func json() -> [String: Any] {
        let a = artifact
        var out: [String: Any] = [
            "path": a.path,
            "format_version": Int(a.version),
            "file_bytes": a.fileBytes,
            "checksum": String(format: "0x%08x", a.checksum),
            "checksum_ok": true,
            "model": modelJSON(a.config),
            "preprocessing": preprocessingJSON(a.config),
            "labels_count": a.labels.count,
            "labels": a.labels,
            "plan": planJSON() ?? NSNull(),
            "tensor_count": entries.count,
            "stored_tensor_count": entries.filter { $0.storedIn == nil }.count,
            "tensor_data": ["offset": firstDataOffset, "bytes": a.fileBytes - firstDataOffset, "stored_bytes": storedBytes],
            "tensors": entries.map(entryJSON),
            "shared_bases": sharedBases.map { ["tensor": $0.tensor, "factors": $0.factors, "blocks": $0.blocks] as [String: Any] },
        ]
        var byFormat = [String: Int]()
        for e in entries where e.storedIn == nil { byFormat[e.dtype, default: 0] += e.bytes + e.auxBytes }
        out["stored_bytes_by_dtype"] = byFormat
        return out
    }

    /// The JSON as text, keys sorted so that two files' outputs diff line by line.
    public func jsonText() throws -> String {
        let data = try JSONSerialization.data(withJSONObject: json(), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    func modelJSON(_ c: ViTConfig) -> [String: Any] {
        [
            "family": "\(c.family)", "image_size": c.imageSize, "patch_size": c.patchSize, "channels": c.channels,
            "dim": c.dim, "depth": c.depth, "heads": c.heads, "mlp_dim": c.mlpDim, "tokens": c.tokenCount,
            "classes": c.numClasses, "layer_norm_eps": shortest(c.layerNormEps), "layer_scale": c.hasLayerScale,
            "gelu": c.geluTanh ? "tanh" : "erf",
            "head_pooling": c.hasHead ? (c.headPooling == .cls ? "cls" : "cls_and_patch_mean") : NSNull(),
        ]
    }

    func preprocessingJSON(_ c: ViTConfig) -> [String: Any] {
        ["resize_shorter": c.resizeShorter, "crop": c.cropSize,
         "mean": [c.mean.0, c.mean.1, c.mean.2].map(shortest), "std": [c.std.0, c.std.1, c.std.2].map(shortest)]
    }

    /// What fips-plan left in the file (configuration words 20–24) and beside it (NAME.plan.json).
    func planJSON() -> [String: Any]? {
        guard artifact.inputLimits != nil || planJSONPath != nil else { return nil }
        var p: [String: Any] = ["plan_json": planJSONPath ?? NSNull(), "input_limits": NSNull()]
        if let l = artifact.inputLimits {
            p["input_limits"] = ["max_pixels": l.maxPixels, "max_input_bytes": l.maxInputBytes,
                                 "max_connections": l.maxConnections, "budget_bytes": l.budgetBytes,
                                 "camera": l.camera.map { $0.text } ?? NSNull()]
        }
        return p
    }

    func entryJSON(_ e: Entry) -> [String: Any] {
        ["name": e.name, "shape": e.shape, "dtype": e.dtype, "offset": e.offset, "bytes": e.bytes,
         "aux_offset": e.auxOffset, "aux_bytes": e.auxBytes, "stored_in": e.storedIn ?? NSNull(), "shared_with": e.sharedWith]
    }

    /// The plain `fips info`: the summary lines, then one line per table entry.
    public func textLines() -> [String] {
        let a = artifact, c = a.config
        var out = [
            "\(a.path): format version \(a.version), \(a.fileBytes) bytes, checksum \(String(format: "0x%08x", a.checksum)) ok",
            "  \(c.family) ViT: image \(c.imageSize), patch \(c.patchSize), width \(c.dim), depth \(c.depth), heads \(c.heads), "
                + "MLP \(c.mlpDim), eps \(c.layerNormEps)",
            "  preprocessing: resize shorter side \(c.resizeShorter), crop \(c.cropSize), mean \(c.mean), std \(c.std)",
            "  head: \(c.hasHead ? "\(c.numClasses) classes (\(c.headPooling))" : "none (backbone)")",
        ]
        if !a.labels.isEmpty { out.append("  labels: \(a.labels.prefix(10).joined(separator: ", "))\(a.labels.count > 10 ? ", ..." : "")") }
        if let l = a.inputLimits {
            out.append("  plan: max \(l.maxPixels) pixels, \(l.maxInputBytes) bytes encoded, \(l.maxConnections) connections, "
                       + "budget \(l.budgetBytes) bytes, camera \(l.camera?.text ?? "not recorded")\(planJSONPath.map { " (\($0))" } ?? "")")
        }
        let stored = entries.filter { $0.storedIn == nil }.count
        out.append("  \(entries.count) tensors, \(stored) stored (\(entries.count - stored) sharing another's bytes), "
                   + "\(storedBytes) bytes of tensor data")
        for b in sharedBases { out.append("  shared basis \(b.tensor): \(b.factors.joined(separator: ", ")) of blocks \(rangesText(b.blocks))") }
        out.append("")
        out.append(pad("name", 34) + pad("shape", 14) + pad("dtype", 10) + leftPad("bytes", 11) + "  shared")
        for e in entries {
            let bytes = e.storedIn == nil ? "\(e.bytes + e.auxBytes)" : "0"
            let shared = e.storedIn.map { "stored in \($0)" } ?? (e.sharedWith.isEmpty ? "" : "also \(e.sharedWith.count) other entries")
            out.append(pad(e.name, 34) + pad(shapeText(e.shape), 14) + pad(e.dtype, 10) + leftPad(bytes, 11) + "  " + shared)
        }
        return out
    }

    /// A Float as the Double with the same shortest decimal form (0.485, not 0.48500001430511475).
    func shortest(_ f: Float) -> Double { Double("\(f)") ?? Double(f) }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
    func leftPad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

    /// [4, 5, 6, 7, 9] -> "4–7, 9".
    func rangesText(_ blocks: [Int]) -> String {
        var parts = [String]()
        var i = 0
        while i < blocks.count {
            var j = i
            while j + 1 < blocks.count && blocks[j + 1] == blocks[j] + 1 { j += 1 }
            parts.append(i == j ? "\(blocks[i])" : "\(blocks[i])–\(blocks[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }
}
