/// How the executor divides its work among a backend's tasks, in one place:
/// the profiler (FipsProfiler's LinearBench) calls these same functions, so
/// it times the split that runs. Any split gives the same bits
/// (docs/KERNELS.md); only the speed depends on it.
public enum WorkSplit {
    /// Row-wise work (quantising activations, LayerNorm, GELU): one
    /// contiguous chunk per task, at least 16 rows each; `body` runs inline
    /// when one task suffices.
    public static func rowChunks<B: ComputeBackend>(_ rows: Int, backend: B, _ body: (Range<Int>) -> Void) {
        let tasks = min(backend.parallelism, max(1, rows / 16))
        if tasks <= 1 { body(0..<rows); return }
        let per = (rows + tasks - 1) / tasks
        backend.parallelFor(tasks) { t in
            let lo = t * per, hi = min(rows, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// The packed GEMM of `rows` activation rows by `panels` output panels:
    /// the panels are divided among the tasks, or the rows when there are
    /// fewer panels than tasks. `body(task, rows, panels)` runs once per
    /// non-empty share; `task` indexes the per-task kernel scratch.
    public static func packedGemm<B: ComputeBackend>(rows: Int, panels: Int, backend: B,
                                                     _ body: (_ task: Int, _ rows: Range<Int>, _ panels: Range<Int>) -> Void) {
        let tasks = max(1, min(backend.parallelism, max(panels, rows)))
        let byPanels = panels >= tasks
        backend.parallelFor(tasks) { t in
            let total = byPanels ? panels : rows
            let lo = total * t / tasks, hi = total * (t + 1) / tasks
            if lo >= hi { return }
            body(t, byPanels ? 0..<rows : lo..<hi, byPanels ? lo..<hi : 0..<panels)
        }
    }
}
