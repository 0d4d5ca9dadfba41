import CFipsKernels
import CFipsSys
import FipsArtifact
import FipsDeviceSupport

func kernelText(_ k: Int32) -> String { kernelName(k, unknown: "unknown") }

func hostName() -> String {
    if let h = readText("/proc/sys/kernel/hostname", cap: 256) {
        let v = trim(h)
        var ok = !v.isEmpty
        for b in v where !(b == 45 || b == 46 || b == 95 || (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)) { ok = false }
        if ok { return text(v) }
    }
    return "device"
}

func parentDirectory(_ path: String) -> String? {
    let b = Array(path.utf8)
    guard let slash = b.lastIndex(of: 47), slash > 0 else { return nil }
    return text(Array(b[..<slash]))
}

public func profileMain(_ args: [String]) -> Int32 {
    profileFlags.run(args, program: "fips-profile", usage: profileUsage, profile)
}

func profile(_ o: ProfileOptions) -> Int32 {
    let name = o.name ?? hostName()
    let out = o.output ?? "profiles/\(name).json"
    if let dir = parentDirectory(out) {
        let e = fips_mkdir_p(dir)
        if e != 0 { printLine("fips-profile: \(dir): cannot create the output directory: \(errnoText(e))", fd: 2); return ExitStatus.modelOrIO }
    }
    if kernelText(fips_qgemm_env_kernel()) == "unknown" {
        printLine("fips-profile: FIPS_KERNEL names a kernel this CPU cannot run (or no kernel)", fd: 2); return ExitStatus.usage
    }
    let system = probeSystem()
    let p = Profiler(o)
    let bw = p.run(system: system)
    let json = profileJSON(name: name, o: o, system: system, p: p, bandwidth: bw)
    let e = json.bytes.withUnsafeBufferPointer { fips_write_file_atomic(out, $0.baseAddress, $0.count) }
    if e != 0 { printLine("fips-profile: \(out): cannot write: \(errnoText(e))", fd: 2); return ExitStatus.modelOrIO }
    var line = TextBuffer()
    line.append("fips-profile: wrote \(out): \(p.gemm.count) GEMM, \(p.vit.count) ViT and \(p.ops.count) op timings on \(bw.threads.count) thread count(s) in ")
    line.appendFixed(p.elapsed, decimals: 1)
    line.append(" s")
    if p.truncated { line.append(" (budget spent: the remaining timings were skipped; \"truncated\": true)") }
    if o.functionalOnly { line.append(" (functional only: the timings mean nothing)") }
    line.append("\n")
    line.write(fd: 2)
    return 0
}

/// C entry point for the cross-built program (boards/build links a C main
/// that calls this); the host executable's main.swift calls it too.
@_cdecl("fips_profile_entry")
public func fipsProfileEntry(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    profileMain(programArguments(argc, argv))
}
