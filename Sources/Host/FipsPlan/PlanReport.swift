import Foundation
import FipsArtifact

extension Plan {
    /// The plan as a table: one row per group, then the totals against the budget and the latency limit.
    public func table() -> String {
        var lines = [String]()
        func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
            s.count >= n ? s : (right ? String(repeating: " ", count: n - s.count) + s : s + String(repeating: " ", count: n - s.count))
        }
        lines.append(pad("group", 6) + pad("blocks", 8) + pad("mlp", 6) + pad("rank", 6, right: true) + pad("sparsity", 10, right: true)
                     + "  " + pad("format", 10) + pad("mlp bits", 9, right: true) + pad("attn bits", 10, right: true)
                     + pad("bytes", 12, right: true) + pad("pred ms", 9, right: true) + pad("mlp err", 10, right: true)
                     + pad("attn err", 10, right: true))
        for (i, c) in chosen.enumerated() {
            let g = groups[i]
            let ch = c.choice
            lines.append(pad("\(i)", 6) + pad("\(g.first!)-\(g.last!)", 8) + pad(ch.mlp.rank > 0 ? "fips" : "dense", 6)
                         + pad(ch.mlp.rank > 0 ? "\(ch.mlp.rank)" : "-", 6, right: true)
                         + pad(String(format: "%.2f", ch.mlp.sparsity), 10, right: true) + "  " + pad(ch.mlpFormat, 10)
                         + pad("\(ch.mlpBits)", 9, right: true) + pad("\(ch.attentionBits)", 10, right: true)
                         + pad("\(c.bytes)", 12, right: true) + pad(String(format: "%.2f", c.ms), 9, right: true)
                         + pad(String(format: "%.2e", c.mlpError), 10, right: true)
                         + pad(String(format: "%.2e", c.attentionError), 10, right: true))
        }
        let m = memory
        // The camera line says which capture it counts: "(640x480)" or "(none)".
        let cameraNote = " (\(options.input.camera?.text ?? "none"))"
        lines.append("memory: artifact \(m.artifactBytes)\(m.artifactExact ? "" : " (bound: q8-sparse)") + arena \(m.arenaBytes)"
                     + " + run buffers \(m.ioBytes) + inputs \(m.inputBytes) + camera \(m.cameraBytes)\(cameraNote)"
                     + " = \(m.totalBytes) bytes (\(formatBytes(m.totalBytes)))"
                     + " of budget \(options.budgetBytes) (\(formatBytes(options.budgetBytes))), "
                     + String(format: "%.1f%%", 100 * Double(m.totalBytes) / Double(options.budgetBytes)))
        var lat = String(format: "latency: %.2f ms predicted (fixed %.2f + blocks %.2f; %@, %d thread%@)", predictedMs, fixedMs,
                         predictedMs - fixedMs, latencySource, options.threads, options.threads == 1 ? "" : "s")
        if let l = options.latencyMs { lat += String(format: " of limit %.1f ms", l) }
        lines.append(lat)
        lines.append(String(format: "error proxy: %.4e summed over %d groups", totalError, groups.count))
        return lines.joined(separator: "\n")
    }

    /// plan.json: per group the choice, bytes, predicted ms and errors; totals; the budget; the inputs.
    public func json(inputs: [String: Any], measured: [String: Any] = [:]) -> [String: Any] {
        var gs = [[String: Any]]()
        for (i, c) in chosen.enumerated() {
            gs.append(["blocks": groups[i], "mlp": c.choice.mlp.rank > 0 ? "fips" : "dense", "rank": c.choice.mlp.rank,
                       "sparsity": c.choice.mlp.sparsity, "format": c.choice.mlpFormat, "mlp_bits": c.choice.mlpBits,
                       "attention_bits": c.choice.attentionBits, "bytes": c.bytes, "predicted_ms": c.ms,
                       "mlp_error": c.mlpError, "attention_error": c.attentionError])
        }
        var totals: [String: Any] = [
            "artifact_bytes": memory.artifactBytes, "artifact_bytes_exact": memory.artifactExact,
            "arena_bytes": memory.arenaBytes, "run_buffer_bytes": memory.ioBytes, "input_bytes": memory.inputBytes,
            "camera_bytes": memory.cameraBytes,
            "memory_bytes": memory.totalBytes, "predicted_ms": predictedMs, "fixed_ms": fixedMs, "error": totalError,
        ]
        for (k, v) in measured { totals[k] = v }
        var budget: [String: Any] = ["memory_bytes": options.budgetBytes, "threads": options.threads]
        if let l = options.latencyMs { budget["latency_ms"] = l }
        budget["max_pixels"] = options.input.maxPixels
        budget["max_input_bytes"] = options.input.maxInputBytes
        budget["max_connections"] = options.input.maxConnections
        budget["camera"] = options.input.camera?.text ?? "none"
        return ["schema": "fips-plan", "version": 1, "groups": gs, "totals": totals, "budget": budget, "inputs": inputs,
                "latency_source": latencySource]
    }
}
