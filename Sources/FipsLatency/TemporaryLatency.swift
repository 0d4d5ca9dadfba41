// THROWAWAY: stands in for the profile branch's LatencyModel API until it is
// merged (fips-plan is written against those signatures). Delete on merge.
import Foundation
import FipsArtifact

public struct TemporaryLatencyError: Error, CustomStringConvertible { public var description: String }

public struct DeviceProfile {
    public var name: String
    public static func load(path: String) throws -> DeviceProfile {
        guard FileManager.default.fileExists(atPath: path) else { throw TemporaryLatencyError(description: "\(path): no such profile") }
        return DeviceProfile(name: (path as NSString).lastPathComponent)
    }
}

public struct BoardDescription {
    public var name: String
    public var values: [String: String]
    public static func load(path: String) throws -> BoardDescription {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TemporaryLatencyError(description: "\(path): cannot read board file")
        }
        var v = [String: String]()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let kv = line.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { v[String(kv[0])] = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        return BoardDescription(name: v["NAME"] ?? path, values: v)
    }
    public static func load(name: String, boardsDirectory: String) throws -> BoardDescription {
        try load(path: boardsDirectory + "/" + name + ".board")
    }
}

public struct LatencyModel {
    var source: String
    var macsPerMs: Double
    var bytesPerMs: Double
    public init(profile: DeviceProfile) { source = "profile \(profile.name)"; macsPerMs = 64 * 2.6e6; bytesPerMs = 20e6 }
    public init(board: BoardDescription) {
        source = "roofline \(board.name)"
        let f = Double(board.values["FREQ_MHZ"] ?? "") ?? 2000
        let m = Double(board.values["INT8_MACS_PER_CYCLE_PER_CORE"] ?? "") ?? 16
        macsPerMs = f * 1e3 * m
        bytesPerMs = (Double(board.values["MEM_BW_GBS"] ?? "") ?? 10) * 1e6
    }
    static func bytes(_ t: TensorDType, _ n: Int) -> Double {
        switch t { case .q4g32: return Double(n) / 2; case .q3g32: return Double(n) * 3 / 8; case .f32: return Double(n) * 4; default: return Double(n) }
    }
    public func predict(_ m: ModelExecution, threads: Int) -> LatencyPrediction {
        let c = m.config, d = c.dim, T = c.tokenCount, f = c.mlpDim
        let rate = macsPerMs * Double(max(1, threads))
        var blocks = [Double]()
        for b in m.blocks {
            var macs = Double(T * 4 * d * d) + Double(2 * T * T * d)
            var bytes = LatencyModel.bytes(b.attention, 4 * d * d)
            switch b.mlp {
            case .dense(let t): macs += Double(2 * T * d * f); bytes += LatencyModel.bytes(t, 2 * d * f)
            case let .fips(r, bt, pt, s):
                macs += Double(2 * T * r * (d + f)) * (1 - s / 2)
                bytes += LatencyModel.bytes(bt, 2 * d * r) + LatencyModel.bytes(pt, 2 * r * f) * (1 - s)
            }
            blocks.append(macs / rate + bytes / bytesPerMs)
        }
        return LatencyPrediction(fixedMs: Double(T * d * c.patchSize * c.patchSize * 3) / rate, blockMs: blocks, source: source)
    }
}
