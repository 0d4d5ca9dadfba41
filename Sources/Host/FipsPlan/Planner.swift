import Foundation
import FipsArtifact
import FipsCompress
import FipsArtifactWriter
import FipsLatency

public enum PlanError: Error, CustomStringConvertible, Equatable {
    case infeasible(String)
    case calibration(String)
    case invalid(String)
    public var description: String {
        switch self {
        case .infeasible(let s), .calibration(let s), .invalid(let s): return s
        }
    }
}

/// The search space and constraints of a plan.
public struct PlanOptions {
    public var budgetBytes: Int
    public var latencyMs: Double?
    public var threads: Int = 1
    public var groupSize: Int = 4
    /// FiPS ranks come from these MLP parameter budgets (FipsBudget), per sparsity, rounded down to
    /// a multiple of `rankMultiple` and capped at the model width.
    public var mlpBudgets: [Double] = [0.25, 0.375, 0.5, 0.625, 0.75]
    public var sparsities: [Double] = [0, 0.5, 0.75]
    public var mlpBits: [Int] = [8, 4, 3, 2]
    public var attentionBits: [Int] = [8, 4]
    public var rankMultiple = 32
    /// Dense MLPs among the candidates (tests turn it off to force FiPS).
    public var allowDense = true
    /// The largest input the plan must accept: a 640x480 decode (a JPEG counts its
    /// DCT-reduced size, so a 12 MP photo decodes at 500x375), 256 KiB encoded,
    /// 2 of fipsd's connections, and fipsd's capture from a 640x480 camera. The room a
    /// plan leaves goes to the encoded size.
    public var input = InputLimits(maxPixels: 640 * 480, maxInputBytes: 256 << 10, maxConnections: 2, budgetBytes: 0,
                                   camera: .size(width: 640, height: 480))
    /// Memory resolution of the knapsack, bytes; nil: budget / 20000 (at least 1).
    public var unit: Int? = nil
    /// Error proxy quantises with GPTQ from the calibration Hessians, as a GPTQ build does (false: round-to-nearest,
    /// for a build with --rounding nearest).
    public var gptqProxy = true
    public init(budgetBytes: Int) { self.budgetBytes = budgetBytes }

    public var effectiveUnit: Int { unit ?? max(1, budgetBytes / 20000) }
}

/// Every option of one group, priced.
public struct PricedCandidate {
    public var choice: GroupChoice
    public var bytes: Int
    public var ms: Double
    public var mlpError: Double
    public var attentionError: Double
    public var error: Double { mlpError + attentionError }
}

public struct Plan {
    public var groups: [[Int]]
    public var chosen: [PricedCandidate]
    public var memory: PlanMemory.Breakdown
    public var fixedMs: Double
    public var latencySource: String
    public var options: PlanOptions
    public var predictedMs: Double { fixedMs + chosen.reduce(0) { $0 + $1.ms } }
    public var totalError: Double { chosen.reduce(0) { $0 + $1.error } }
    public var choices: [GroupChoice] { chosen.map { $0.choice } }
}

public enum Planner {
    public static func groups(depth: Int, size: Int) -> [[Int]] {
        stride(from: 0, to: depth, by: max(1, size)).map { Array($0..<min(depth, $0 + max(1, size))) }
    }

    /// The MLP options of a group of `n` blocks.
    public static func mlpOptions(config c: ViTConfig, blocks n: Int, options o: PlanOptions) -> [MLPOption] {
        var out = o.allowDense ? o.mlpBits.map { MLPOption(mlp: .dense, bits: $0) } : []
        var seen = Set<MLPOption>()
        for s in o.sparsities {
            for p in o.mlpBudgets {
                guard let r = try? FipsBudget.fipsRank(budget: p, sparsity: s, d: c.dim, m: c.mlpDim, blocks: n,
                                                       multiple: o.rankMultiple), r <= c.dim else { continue }
                // Sparse projections only pay at 8 bits (q8-sparse); at 4 and 3 bits they are stored dense.
                for b in (s > 0 ? o.mlpBits.filter { $0 == 8 } : o.mlpBits) {
                    let opt = MLPOption(mlp: .fips(rank: r, sparsity: s), bits: b)
                    if seen.insert(opt).inserted { out.append(opt) }
                }
            }
        }
        return out
    }

    static func blockExecution(_ g: GroupChoice) -> BlockExecution {
        let t = PackedWeights.denseType(bits: g.mlpBits)
        let mlp: BlockExecution.MLP
        switch g.mlp {
        case .dense: mlp = .dense(t)
        case let .fips(r, s): mlp = .fips(rank: r, basis: t, projections: s > 0 ? .q8sparse : t, projectionSparsity: s)
        }
        return BlockExecution(attention: PackedWeights.denseType(bits: g.attentionBits), mlp: mlp)
    }

    /// Prices every candidate of every group: bytes (additive, exact), ms (the latency model's blocks), errors.
    public static func price(config c: ViTConfig, memory: PlanMemory, sensitivity: SensitivityTable, latency: LatencyModel,
                             options o: PlanOptions) -> (candidates: [[PricedCandidate]], fixedArtifact: Int, fixedMs: Double, source: String) {
        let reference = memory.groups.map { _ in GroupChoice(mlp: .dense, mlpBits: 8, attentionBits: 8) }
        let fixedArtifact = memory.fixedArtifactBytes(reference: reference)
        let base = BlockExecution(attention: .q8, mlp: .dense(.q8))
        let ref = latency.predict(ModelExecution(config: c, blocks: Array(repeating: base, count: c.depth)), threads: o.threads)
        var all = [[PricedCandidate]]()
        for (gi, g) in memory.groups.enumerated() {
            var list = [PricedCandidate]()
            for (opt, mlpErr) in sensitivity.mlp[gi].sorted(by: { ($0.key.mlp.rank, $0.key.mlp.sparsity, $0.key.bits) < ($1.key.mlp.rank, $1.key.mlp.sparsity, $1.key.bits) }) {
                for ab in o.attentionBits {
                    guard let aErr = sensitivity.attention[gi][ab] else { continue }
                    let choice = GroupChoice(mlp: opt.mlp, mlpBits: opt.bits, attentionBits: ab)
                    var blocks = Array(repeating: base, count: c.depth)
                    for b in g { blocks[b] = blockExecution(choice) }
                    let p = latency.predict(ModelExecution(config: c, blocks: blocks), threads: o.threads)
                    let ms = g.reduce(0.0) { $0 + p.blockMs[$1] }
                    list.append(PricedCandidate(choice: choice, bytes: memory.groupBytes(gi, choice, reference: reference), ms: ms,
                                                mlpError: mlpErr, attentionError: aErr))
                }
            }
            all.append(list)
        }
        return (all, fixedArtifact, ref.fixedMs, ref.source)
    }

    /// Solves the knapsack exactly for every cap on the widest rank (the arena depends on it, not additively).
    public static func solve(config c: ViTConfig, memory: PlanMemory, candidates: [[PricedCandidate]], fixedArtifact: Int,
                             fixedMs: Double, source: String, options o: PlanOptions) throws -> Plan {
        let caps = Array(Set(candidates.flatMap { $0.map { $0.choice.mlp.rank } })).sorted()
        var best: (Plan, Double)? = nil
        for cap in caps {
            let allowed = candidates.map { $0.filter { $0.choice.mlp.rank <= cap } }
            if allowed.contains(where: { $0.isEmpty }) { continue }
            let overhead = fixedArtifact + memory.runtimeBytes(maxRank: cap)
            let capacity = o.budgetBytes - overhead
            if capacity < 0 { continue }
            // Sizes above each group's smallest option, so that rounding them up to the DP's unit can never
            // rule out the smallest plan (the one the infeasible-budget error names).
            let floors = allowed.map { $0.map { $0.bytes }.min()! }
            let items = allowed.enumerated().map { g, list in
                list.map { KnapsackItem(bytes: $0.bytes - floors[g], ms: $0.ms, error: $0.error) }
            }
            let room = capacity - floors.reduce(0, +)
            if room < 0 { continue }
            guard let pick = MultipleChoiceKnapsack.solve(items, capacity: room, latency: o.latencyMs.map { $0 - fixedMs },
                                                          unit: o.effectiveUnit) else { continue }
            let chosen = pick.enumerated().map { allowed[$0.offset][$0.element] }
            let plan = Plan(groups: memory.groups, chosen: chosen, memory: memory.breakdown(chosen.map { $0.choice }),
                            fixedMs: fixedMs, latencySource: source, options: o)
            if best == nil || plan.totalError < best!.1 - 1e-15 { best = (plan, plan.totalError) }
        }
        if let b = best {
            precondition(b.0.memory.totalBytes <= o.budgetBytes, "planned \(b.0.memory.totalBytes) bytes over the budget")
            return b.0
        }
        throw PlanError.infeasible(infeasibleMessage(memory: memory, candidates: candidates, fixedArtifact: fixedArtifact,
                                                     fixedMs: fixedMs, options: o))
    }

    /// Uniform settings (the same choice in every group) that fit the memory and latency limits, best
    /// error proxy first: the baselines a plan is compared with.
    public static func uniformPlans(memory: PlanMemory, candidates: [[PricedCandidate]], fixedMs: Double, source: String,
                                    options o: PlanOptions) -> [Plan] {
        var out = [Plan]()
        for first in candidates[0] {
            let chosen = candidates.compactMap { $0.first { $0.choice == first.choice } }
            guard chosen.count == candidates.count else { continue }
            let plan = Plan(groups: memory.groups, chosen: chosen, memory: memory.breakdown(chosen.map { $0.choice }),
                            fixedMs: fixedMs, latencySource: source, options: o)
            if plan.memory.totalBytes > o.budgetBytes { continue }
            if let l = o.latencyMs, plan.predictedMs > l + 1e-9 { continue }
            out.append(plan)
        }
        return out.sorted { $0.totalError < $1.totalError }
    }

    /// The smallest memory any plan needs (and, under the latency limit, the smallest that meets it), and the fastest latency.
    static func infeasibleMessage(memory: PlanMemory, candidates: [[PricedCandidate]], fixedArtifact: Int, fixedMs: Double,
                                  options o: PlanOptions) -> String {
        let caps = Array(Set(candidates.flatMap { $0.map { $0.choice.mlp.rank } })).sorted()
        var smallest = Int.max
        var smallestUnderLatency = Int.max
        for cap in caps {
            let allowed = candidates.map { $0.filter { $0.choice.mlp.rank <= cap } }
            if allowed.contains(where: { $0.isEmpty }) { continue }
            let overhead = fixedArtifact + memory.runtimeBytes(maxRank: cap)
            smallest = min(smallest, overhead + allowed.reduce(0) { $0 + $1.map { $0.bytes }.min()! })
            if let l = o.latencyMs {
                // exact: the knapsack with unit-1 memory over a capacity that holds everything, minimising bytes
                // subject to the latency limit (error := bytes)
                let items = allowed.map { $0.map { KnapsackItem(bytes: 0, ms: $0.ms, error: Double($0.bytes)) } }
                if let pick = MultipleChoiceKnapsack.solve(items, capacity: 0, latency: l - fixedMs) {
                    let bytes = pick.enumerated().reduce(0) { $0 + allowed[$1.offset][$1.element].bytes }
                    smallestUnderLatency = min(smallestUnderLatency, overhead + bytes)
                }
            }
        }
        let fastest = fixedMs + candidates.reduce(0.0) { $0 + ($1.map { $0.ms }.min() ?? 0) }
        var s = "budget \(formatBytes(o.budgetBytes))"
        if let l = o.latencyMs { s += String(format: " with latency %.1f ms", l) }
        s += " is infeasible for this model on this board: "
        s += "the smallest feasible memory budget is \(formatBytes(smallest)) (\(smallest) bytes)"
        if let l = o.latencyMs {
            if fastest > l + 1e-9 {
                s += String(format: "; the fastest achievable latency is %.1f ms, above the %.1f ms asked for", fastest, l)
            } else if smallestUnderLatency != Int.max {
                s += String(format: "; meeting %.1f ms needs at least ", l) + "\(formatBytes(smallestUnderLatency)) (\(smallestUnderLatency) bytes)"
                s += String(format: "; the fastest achievable latency is %.1f ms", fastest)
            }
        } else {
            s += String(format: "; the fastest achievable latency is %.1f ms", fastest)
        }
        // The camera is the one reserve a user can drop outright, so name it.
        if memory.cameraBytes > 0, let cam = o.input.camera {
            s += "; that counts fipsd's \(cam.text) camera, \(memory.cameraBytes) bytes (--camera none for a model served without one)"
        }
        return s
    }
}

public func formatBytes(_ b: Int) -> String {
    if b >= 1_000_000 { return String(format: "%.2f MB", Double(b) / 1e6) }
    if b >= 1_000 { return String(format: "%.1f kB", Double(b) / 1e3) }
    return "\(b) B"
}

