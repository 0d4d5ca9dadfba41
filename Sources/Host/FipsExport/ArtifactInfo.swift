import Foundation
import FipsArtifact

/// What `fips info` reports about an opened (checksummed) artifact: the
/// header, the configuration, the plan's input limits, and the tensor table
/// with each entry's place in the file and which entries share stored bytes.
/// The JSON keys are documented in docs/ARTIFACT.md ("fips info --json");
/// they are a stable interface, so rename none of them.
public struct ArtifactInfo {
    /// One tensor table entry as the file lays it out.
    public struct Entry {
        public var name: String
        public var shape: [Int]
        public var dtype: String
        public var offset, bytes, auxOffset, auxBytes: Int
        /// The earlier entry whose bytes this one points at (the writer stores
        /// identical tensors once), nil when this entry stores its own.
        public var storedIn: String?
        /// The other entries that point at this one's bytes.
        public var sharedWith: [String]
    }

    /// A FiPS shared basis: one stored factor that several MLP layers name
    /// (every block of a group, and fc1 and fc2 alike when they share it).
    public struct SharedBasis {
        public var tensor: String
        /// The factor names that point at it: "mlp.fc1.U", "mlp.fc1.Ut", "mlp.fc2.U".
        public var factors: [String]
        public var blocks: [Int]
    }

    public let artifact: Artifact
    public let entries: [Entry]
    public let sharedBases: [SharedBasis]
    /// fips-plan's NAME.plan.json beside the artifact, when there is one.
    public let planJSONPath: String?

    public init(_ a: Artifact) {
        artifact = a
        var entries = [Entry]()
        var firstAt = [Int: Int]()  // data offset -> index of the entry that stores it
        for t in a.tensors {
            let off = a.fileOffset(of: t.data)
            let auxOff = t.aux.map { a.fileOffset(of: $0) } ?? 0
            let owner = firstAt[off]
            if owner == nil { firstAt[off] = entries.count }
            entries.append(Entry(name: t.name, shape: t.shape, dtype: t.dtype.name, offset: off, bytes: t.byteCount,
                                 auxOffset: t.auxByteCount > 0 ? auxOff : 0, auxBytes: t.auxByteCount,
                                 storedIn: owner.map { entries[$0].name }, sharedWith: []))
        }
        // An owner lists every entry that points at its bytes; each of those
        // lists the owner and the owner's other sharers.
        for i in entries.indices where entries[i].storedIn != nil {
            entries[firstAt[entries[i].offset]!].sharedWith.append(entries[i].name)
        }
        for i in entries.indices where entries[i].storedIn != nil {
            let owner = entries[firstAt[entries[i].offset]!]
            entries[i].sharedWith = [owner.name] + owner.sharedWith.filter { $0 != entries[i].name }
        }
        self.entries = entries
        sharedBases = ArtifactInfo.sharedBases(entries)
        let stem = a.path.hasSuffix(".fips") ? String(a.path.dropLast(5)) : a.path
        planJSONPath = FileManager.default.fileExists(atPath: stem + ".plan.json") ? stem + ".plan.json" : nil
    }

    /// Stored tensors that more than one MLP layer names as its basis U (Ut
    /// when quantised): the FiPS groups. A per-layer SVD factor is not listed.
    static func sharedBases(_ entries: [Entry]) -> [SharedBasis] {
        let basisLeaves: Set<String> = ["mlp.fc1.U", "mlp.fc1.Ut", "mlp.fc2.U"]
        var out = [SharedBasis]()
        for e in entries where e.storedIn == nil {
            var factors = [String](), blocks = Set<Int>(), uses = 0
            for name in [e.name] + e.sharedWith {
                guard let (block, leaf) = factorName(name), basisLeaves.contains(leaf) else { continue }
                uses += 1
                blocks.insert(block)
                if !factors.contains(leaf) { factors.append(leaf) }
            }
            if uses > 1 { out.append(SharedBasis(tensor: e.name, factors: factors.sorted(), blocks: blocks.sorted())) }
        }
        return out
    }

    /// "blocks.4.mlp.fc1.U" -> (4, "mlp.fc1.U").
    static func factorName(_ name: String) -> (Int, String)? {
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blocks", let i = Int(parts[1]) else { return nil }
        return (i, String(parts[2]))
    }

    /// Where the first stored tensor begins: the tensor data runs from here to the end of the file.
    public var firstDataOffset: Int { entries.map(\.offset).min() ?? artifact.fileBytes }

    /// Bytes of tensor data and aux stored in the file, each stored entry counted once.
    public var storedBytes: Int {
        entries.filter { $0.storedIn == nil }.reduce(0) { $0 + $1.bytes + $1.auxBytes }
    }
}
