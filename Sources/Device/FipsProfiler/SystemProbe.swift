import CFipsProbe
import CFipsSys

/// What fips-profile learns about the machine without measuring anything.
struct SystemInfo {
    var arch = ""
    var cpuModel = ""
    var features: [String] = []
    var hwcap: UInt64? = nil
    var hwcap2: UInt64? = nil
    var onlineCpus = 1
    var usableCpus = 1
    var clusters: [ClusterInfo] = []
    var pageSize = 4096
    var memTotalBytes: Int64 = 0
    var memAvailableBytes: Int64 = 0
    var cgroupMemoryLimitBytes: Int64? = nil
    var cgroupVersion: Int? = nil
}

struct ClusterInfo {
    var cpus: [Int]
    var part: String?
    var core: String
    var maxFreqKHz: Int?
}

/// A whole text file (also /proc and /sys ones, whose stat size is 0); nil
/// when it cannot be read.
func readText(_ path: String, cap: Int = 1 << 20) -> [UInt8]? {
    var buf = [CChar](repeating: 0, count: cap)
    let n = path.withCString { fips_probe_read_text($0, &buf, cap) }
    if n < 0 { return nil }
    var out = [UInt8]()
    out.reserveCapacity(Int(n))
    for i in 0..<Int(n) { out.append(UInt8(bitPattern: buf[i])) }
    return out
}

func lines(_ b: [UInt8]) -> [[UInt8]] {
    var out = [[UInt8]](), cur = [UInt8]()
    for c in b {
        if c == 10 { out.append(cur); cur = [] } else { cur.append(c) }
    }
    if !cur.isEmpty { out.append(cur) }
    return out
}

func trim(_ b: [UInt8]) -> [UInt8] {
    var lo = 0, hi = b.count
    while lo < hi && (b[lo] == 32 || b[lo] == 9 || b[lo] == 13) { lo += 1 }
    while hi > lo && (b[hi - 1] == 32 || b[hi - 1] == 9 || b[hi - 1] == 13 || b[hi - 1] == 10) { hi -= 1 }
    return Array(b[lo..<hi])
}

func containsBytes(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
    if needle.isEmpty { return true }
    if hay.count < needle.count { return false }
    for i in 0...(hay.count - needle.count) {
        var ok = true
        for j in 0..<needle.count where hay[i + j] != needle[j] { ok = false; break }
        if ok { return true }
    }
    return false
}

func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

/// "key<tabs>: value" lines of /proc/cpuinfo and /proc/meminfo.
func keyValue(_ line: [UInt8]) -> (key: String, value: [UInt8])? {
    guard let colon = line.firstIndex(of: 58) else { return nil }
    return (text(trim(Array(line[..<colon]))), trim(Array(line[(colon + 1)...])))
}

func parseUInt(_ b: [UInt8]) -> UInt64? {
    var v: UInt64 = 0
    var any = false
    var i = 0
    if b.count > 2 && b[0] == 48 && (b[1] == 120 || b[1] == 88) {       // 0x...
        i = 2
        while i < b.count {
            let c = b[i]
            let d: UInt64
            if c >= 48 && c <= 57 { d = UInt64(c - 48) } else if c >= 97 && c <= 102 { d = UInt64(c - 87) }
            else if c >= 65 && c <= 70 { d = UInt64(c - 55) } else { break }
            v = v &* 16 &+ d; any = true; i += 1
        }
        return any ? v : nil
    }
    while i < b.count && b[i] >= 48 && b[i] <= 57 { v = v &* 10 &+ UInt64(b[i] - 48); any = true; i += 1 }
    return any ? v : nil
}

func words(_ b: [UInt8]) -> [String] {
    var out = [String](), cur = [UInt8]()
    for c in b {
        if c == 32 || c == 9 || c == 44 { if !cur.isEmpty { out.append(text(cur)); cur = [] } } else { cur.append(c) }
    }
    if !cur.isEmpty { out.append(text(cur)) }
    return out
}

/// AT_HWCAP / AT_HWCAP2 bit names on aarch64 Linux (arch/arm64/include/uapi/asm/hwcap.h).
let hwcapNames: [String] = [
    "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid",
    "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve", "asimdfhm",
    "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg",
]
let hwcap2Names: [String] = [
    "dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2", "frint", "svei8mm",
    "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh", "rng", "bti",
]

/// Arm core names by MIDR part number (implementer 0x41).
func armCoreName(_ part: UInt64) -> String? {
    switch part {
    case 0xd03: return "cortex-a53"
    case 0xd04: return "cortex-a35"
    case 0xd05: return "cortex-a55"
    case 0xd07: return "cortex-a57"
    case 0xd08: return "cortex-a72"
    case 0xd09: return "cortex-a73"
    case 0xd0a: return "cortex-a75"
    case 0xd0b: return "cortex-a76"
    case 0xd0c: return "neoverse-n1"
    case 0xd0d: return "cortex-a77"
    case 0xd40: return "neoverse-v1"
    case 0xd41: return "cortex-a78"
    case 0xd42: return "cortex-a78ae"
    case 0xd44: return "cortex-x1"
    case 0xd46: return "cortex-a510"
    case 0xd47: return "cortex-a710"
    case 0xd48: return "cortex-x2"
    case 0xd49: return "neoverse-n2"
    case 0xd4b: return "cortex-a78c"
    case 0xd4d: return "cortex-a715"
    case 0xd4f: return "neoverse-v2"
    case 0xd80: return "cortex-a520"
    case 0xd81: return "cortex-a720"
    default: return nil
    }
}

func hex(_ v: UInt64) -> String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    if v == 0 { return "0x0" }
    var out = [UInt8](), x = v
    while x > 0 { out.append(digits[Int(x & 15)]); x >>= 4 }
    return "0x" + text(out.reversed())
}

func probeSystem() -> SystemInfo {
    var s = SystemInfo()
    var buf = [CChar](repeating: 0, count: 256)
    let n = Int(fips_probe_machine(&buf, 256))
    s.arch = text((0..<n).map { UInt8(bitPattern: buf[$0]) })
    s.onlineCpus = Int(fips_probe_online_cpus())
    s.usableCpus = Int(fips_cpu_count())
    s.pageSize = Int(fips_probe_page_size())

    // /proc/cpuinfo: model, flags (x86) and per-CPU MIDR fields (aarch64).
    var cpuParts = [Int: UInt64]()
    var cpuImpl = [Int: UInt64]()
    var cpuinfoFlags = [String]()
    if let info = readText("/proc/cpuinfo") {
        var cpu = -1
        for l in lines(info) {
            guard let (k, v) = keyValue(l) else { continue }
            switch k {
            case "processor": cpu = Int(parseUInt(v) ?? 0)
            case "model name", "Model", "Hardware":
                if s.cpuModel.isEmpty { s.cpuModel = text(v) }
            case "flags": if cpuinfoFlags.isEmpty { cpuinfoFlags = words(v) }
            case "CPU part": if let p = parseUInt(v) { cpuParts[cpu] = p }
            case "CPU implementer": if let p = parseUInt(v) { cpuImpl[cpu] = p }
            default: break
            }
        }
    }
    let arch = fips_probe_arch()
    if arch == 1 {
        let h1 = fips_probe_hwcap(1), h2 = fips_probe_hwcap(2)
        s.hwcap = h1; s.hwcap2 = h2
        for (i, name) in hwcapNames.enumerated() where (h1 >> UInt64(i)) & 1 == 1 { s.features.append(name) }
        for (i, name) in hwcap2Names.enumerated() where (h2 >> UInt64(i)) & 1 == 1 { s.features.append(name) }
    } else if arch == 2 {
        var f = [CChar](repeating: 0, count: 512)
        let len = Int(fips_probe_x86_features(&f, 512))
        s.features = words((0..<len).map { UInt8(bitPattern: f[$0]) })
        if s.cpuModel.isEmpty {
            var b = [CChar](repeating: 0, count: 64)
            let bl = Int(fips_probe_x86_brand(&b, 64))
            s.cpuModel = text((0..<bl).map { UInt8(bitPattern: b[$0]) })
        }
    } else {
        s.features = cpuinfoFlags
    }
    if s.cpuModel.isEmpty { s.cpuModel = s.arch }

    // Clusters: CPUs grouped by core type (MIDR) and maximum frequency.
    var keys = [String]()
    var groups = [ClusterInfo]()
    for cpu in 0..<s.onlineCpus {
        let base = "/sys/devices/system/cpu/cpu\(cpu)"
        var freq: Int? = nil
        if let f = readText(base + "/cpufreq/cpuinfo_max_freq", cap: 64), let v = parseUInt(trim(f)) { freq = Int(v) }
        var part: UInt64? = cpuParts[cpu], impl: UInt64? = cpuImpl[cpu]
        if let m = readText(base + "/regs/identification/midr_el1", cap: 64), let midr = parseUInt(trim(m)) {
            part = (midr >> 4) & 0xfff; impl = (midr >> 24) & 0xff
        }
        var partText: String? = nil, core = s.cpuModel
        if let p = part {
            partText = hex(impl ?? 0) + ":" + hex(p)
            if impl == nil || impl == 0x41, let name = armCoreName(p) { core = name }
        }
        let key = (partText ?? "-") + "@" + (freq.map { "\($0)" } ?? "-")
        if let i = keys.firstIndex(of: key) { groups[i].cpus.append(cpu) } else {
            keys.append(key)
            groups.append(ClusterInfo(cpus: [cpu], part: partText, core: core, maxFreqKHz: freq))
        }
    }
    // Fastest cluster first.
    groups.sort { ($0.maxFreqKHz ?? 0) > ($1.maxFreqKHz ?? 0) }
    s.clusters = groups

    if let mem = readText("/proc/meminfo") {
        for l in lines(mem) {
            guard let (k, v) = keyValue(l), let kb = parseUInt(v) else { continue }
            if k == "MemTotal" { s.memTotalBytes = Int64(kb) * 1024 }
            if k == "MemAvailable" { s.memAvailableBytes = Int64(kb) * 1024 }
        }
    }
    probeCgroup(&s)
    return s
}

/// The memory limit of this process's cgroup (v2 memory.max, else v1
/// memory.limit_in_bytes); "max" or a v1 "unlimited" (≥ 2^60) is no limit.
func probeCgroup(_ s: inout SystemInfo) {
    var v2Path: String? = nil, v1Path: String? = nil
    if let cg = readText("/proc/self/cgroup") {
        for l in lines(cg) {
            let t = text(l)
            if t.hasPrefix("0::") { v2Path = String(t.dropFirst(3)) }
            else if containsBytes(l, Array(":memory:".utf8)) || containsBytes(l, Array(",memory:".utf8)) {
                if let r = l.lastIndex(of: 58) { v1Path = text(Array(l[(r + 1)...])) }
            }
        }
    }
    func limit(_ path: String) -> (found: Bool, value: Int64?) {
        guard let b = readText(path, cap: 128) else { return (false, nil) }
        let v = trim(b)
        if text(v) == "max" { return (true, nil) }
        guard let n = parseUInt(v) else { return (false, nil) }
        return (true, n >= (1 << 60) ? nil : Int64(n))
    }
    if let p = v1Path {
        for candidate in ["/sys/fs/cgroup/memory" + p + "/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            let r = limit(candidate)
            if r.found { s.cgroupVersion = 1; s.cgroupMemoryLimitBytes = r.value; return }
        }
    }
    var candidates = [String]()
    if let p = v2Path { candidates.append("/sys/fs/cgroup" + (p == "/" ? "" : p) + "/memory.max") }
    candidates.append("/sys/fs/cgroup/memory.max")
    for c in candidates {
        let r = limit(c)
        if r.found { s.cgroupVersion = 2; s.cgroupMemoryLimitBytes = r.value; return }
    }
    if readText("/sys/fs/cgroup/cgroup.controllers", cap: 256) != nil { s.cgroupVersion = 2 }
}
