import CFipsKernels
import FipsDeviceSupport

/// profiles/NAME.json: the profile as profiles/schema.json describes it.

func appendNumber(_ t: inout TextBuffer, _ v: Double, _ decimals: Int = 4) {
    if !v.isFinite { t.append("0"); return }
    t.appendFixed(v, decimals: decimals)
}

func appendStrings(_ t: inout TextBuffer, _ l: [String]) {
    t.append("[")
    for (i, s) in l.enumerated() { if i > 0 { t.append(", ") }; t.appendJSONString(s) }
    t.append("]")
}

func profileJSON(name: String, o: ProfileOptions, system s: SystemInfo, p: Profiler,
                 bandwidth: (read: [Double], copy: [Double], bufferBytes: Int, threads: [Int])) -> TextBuffer {
    var t = TextBuffer()
    t.append("{\n  \"schema\": \"fips-profile\",\n  \"schema_version\": \(profileSchemaVersion),\n  \"name\": ")
    t.appendJSONString(name)
    t.append(",\n  \"generator\": ")
    t.appendJSONString(generatorName)
    t.append(",\n  \"functional_only\": \(o.functionalOnly ? "true" : "false"),\n  \"quick\": \(o.quick ? "true" : "false")")
    t.append(",\n  \"truncated\": \(p.truncated ? "true" : "false")")
    t.append(",\n  \"system\": {\n    \"arch\": ")
    t.appendJSONString(s.arch)
    t.append(",\n    \"cpu_model\": ")
    t.appendJSONString(s.cpuModel)
    t.append(",\n    \"features\": ")
    appendStrings(&t, s.features)
    t.append(",\n    \"hwcap\": " + (s.hwcap.map { "\($0)" } ?? "null"))
    t.append(",\n    \"hwcap2\": " + (s.hwcap2.map { "\($0)" } ?? "null"))
    t.append(",\n    \"online_cpus\": \(s.onlineCpus),\n    \"usable_cpus\": \(s.usableCpus),\n    \"clusters\": [")
    for (i, c) in s.clusters.enumerated() {
        t.append(i == 0 ? "\n      {\"cpus\": [" : ",\n      {\"cpus\": [")
        for (j, cpu) in c.cpus.enumerated() { t.append(j == 0 ? "\(cpu)" : ", \(cpu)") }
        t.append("], \"part\": ")
        if let part = c.part { t.appendJSONString(part) } else { t.append("null") }
        t.append(", \"core\": ")
        t.appendJSONString(c.core)
        t.append(", \"max_freq_khz\": " + (c.maxFreqKHz.map { "\($0)" } ?? "null") + "}")
    }
    t.append("\n    ],\n    \"page_size\": \(s.pageSize),\n    \"mem_total_bytes\": \(s.memTotalBytes),\n    \"mem_available_bytes\": \(s.memAvailableBytes)")
    t.append(",\n    \"cgroup_memory_limit_bytes\": " + (s.cgroupMemoryLimitBytes.map { "\($0)" } ?? "null"))
    t.append(",\n    \"cgroup_version\": " + (s.cgroupVersion.map { "\($0)" } ?? "null"))
    t.append("\n  },\n  \"kernels\": {\"best\": ")
    t.appendJSONString(kernelText(fips_qgemm_best_kernel()))
    t.append(", \"used\": ")
    t.appendJSONString(kernelText(p.kernel))
    var supported = [String]()
    for k in 0..<FIPS_QKERNEL_COUNT where fips_qgemm_kernel_supported(k) == 1 { supported.append(kernelText(k)) }
    t.append(", \"supported\": ")
    appendStrings(&t, supported)
    t.append("},\n  \"threads\": [")
    for (i, n) in bandwidth.threads.enumerated() { t.append(i == 0 ? "\(n)" : ", \(n)") }
    t.append("],\n  \"memory_bandwidth\": {\"read_gbs\": [")
    for (i, v) in bandwidth.read.enumerated() { if i > 0 { t.append(", ") }; appendNumber(&t, v, 2) }
    t.append("], \"copy_gbs\": [")
    for (i, v) in bandwidth.copy.enumerated() { if i > 0 { t.append(", ") }; appendNumber(&t, v, 2) }
    t.append("], \"buffer_bytes\": \(bandwidth.bufferBytes)},\n  \"gemm\": [")
    for (i, g) in p.gemm.enumerated() {
        t.append(i == 0 ? "\n    {\"format\": \"" : ",\n    {\"format\": \"")
        t.append(formatName(g.format))
        t.append("\", \"sparsity\": ")
        appendNumber(&t, g.sparsity, 2)
        t.append(", \"m\": \(g.m), \"n\": \(g.n), \"k\": \(g.k), \"threads\": \(g.threads), \"ms\": ")
        appendNumber(&t, g.ms)
        t.append(", \"runs\": \(g.runs)}")
    }
    t.append("\n  ],\n  \"vit\": [")
    for (i, v) in p.vit.enumerated() {
        t.append(i == 0 ? "\n    {" : ",\n    {")
        t.append("\"tokens\": \(v.tokens), \"dim\": \(v.dim), \"heads\": \(v.heads), \"mlp_dim\": \(v.mlpDim), \"patch_size\": \(v.patchSize)")
        t.append(", \"attention\": \"\(v.int8Attention ? "int8" : "f32")\", \"integer_nonlinear\": \(v.integerNonlinear ? "true" : "false")")
        t.append(", \"threads\": \(v.threads), \"block_other_ms\": ")
        appendNumber(&t, v.blockOtherMs)
        t.append(", \"fixed_ms\": ")
        appendNumber(&t, v.fixedMs)
        t.append(", \"runs\": \(v.runs)}")
    }
    t.append("\n  ],\n  \"ops\": [")
    for (i, op) in p.ops.enumerated() {
        t.append(i == 0 ? "\n    {\"op\": " : ",\n    {\"op\": ")
        t.appendJSONString(op.op)
        t.append(", \"rows\": \(op.rows), \"cols\": \(op.cols), \"threads\": \(op.threads), \"ms\": ")
        appendNumber(&t, op.ms)
        t.append("}")
    }
    t.append("\n  ],\n  \"elapsed_seconds\": ")
    appendNumber(&t, p.elapsed, 1)
    t.append("\n}\n")
    return t
}
