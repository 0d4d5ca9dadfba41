import CFipsKernels
import FipsArtifact
import FipsKernels

/// Attention with both products in int8: Q and P quantised per token, K
/// and V per key token / per channel (dynamic scales, so nothing to
/// calibrate), K and Vᵀ packed into q8 tiles on the fly. Softmax stays float
/// (or Shiftmax). Each head works in its own `AttentionLayout` of the
/// arena's `attnScratch` slot.
extension ViTExecutor {
    func integerAttention(batch: Int, scale: Float) {
        let c = config, d = c.dim, T = c.tokenCount, hd = c.headDim
        let L = AttentionLayout(T: T, headDim: hd)
        let kernel = self.kernel
        let q8 = QuantFormat.q8.rawValue
        for b in 0..<batch {
            let base = qkv + b * T * 3 * d
            backend.parallelFor(c.heads) { head in
                let mem = self.attnScratch + head * self.attnScratchBytes
                func i8(_ o: Int) -> UnsafeMutablePointer<Int8> { (mem + o).assumingMemoryBound(to: Int8.self) }
                func f32(_ o: Int) -> UnsafeMutablePointer<Float> { (mem + o).assumingMemoryBound(to: Float.self) }
                func i32(_ o: Int) -> UnsafeMutablePointer<Int32> { (mem + o).assumingMemoryBound(to: Int32.self) }
                let q = base + head * hd, k = base + d + head * hd, v = base + 2 * d + head * hd
                // scores = Q·Kᵀ
                _ = fips_quantize_rows(kernel, q, 3 * d, Int32(T), Int32(hd), nil, i8(L.qA), f32(L.qScale), i32(L.qSum))
                _ = fips_quantize_rows(kernel, k, 3 * d, Int32(T), Int32(hd), nil, i8(L.rows), f32(L.rowScale), i32(L.rowSum))
                ViTExecutor.packQ8Tiles(UnsafePointer(i8(L.rows)), rows: T, paddedCols: L.hdP, scales: UnsafePointer(f32(L.rowScale)),
                                        into: i8(L.packed), packedScales: f32(L.packedScale))
                let scores = self.scores + head * T * T
                var kw = fips_qmatrix(format: q8, rows: Int32(T), cols: Int32(hd), data: UnsafeRawPointer(i8(L.packed)),
                                      scales: UnsafePointer(f32(L.packedScale)), offsets: nil, masks: nil)
                _ = fips_qgemm(kernel, i8(L.qA), f32(L.qScale), i32(L.qSum), 0, Int32(T), &kw, 0,
                               Int32(PackedShape(rows: T, cols: hd).panels), nil, scores, T, mem + L.kernelScratch)
                self.softmaxToInt8(scores, T: T, scale: scale, q: i8(L.pA), scales: f32(L.pScale), sums: i32(L.pSum))
                // out = P·V, V as the weight Vᵀ [hd, T]
                let vT = self.vT + head * hd * T
                self.transposeV(v, into: vT)
                _ = fips_quantize_rows(kernel, vT, T, Int32(hd), Int32(T), nil, i8(L.rows), f32(L.rowScale), i32(L.rowSum))
                ViTExecutor.packQ8Tiles(UnsafePointer(i8(L.rows)), rows: hd, paddedCols: L.tP, scales: UnsafePointer(f32(L.rowScale)),
                                        into: i8(L.packed), packedScales: f32(L.packedScale))
                var vw = fips_qmatrix(format: q8, rows: Int32(hd), cols: Int32(T), data: UnsafeRawPointer(i8(L.packed)),
                                      scales: UnsafePointer(f32(L.packedScale)), offsets: nil, masks: nil)
                _ = fips_qgemm(kernel, i8(L.pA), f32(L.pScale), i32(L.pSum), 0, Int32(T), &vw, 0,
                               Int32(PackedShape(rows: hd, cols: T).panels), nil, self.attnOut + b * T * d + head * hd, d,
                               mem + L.kernelScratch)
            }
        }
    }

    /// P = softmax(scores · scale) quantised per row for P·V. On aarch64 a
    /// float softmax goes straight to int8 (fips_softmax_quantize_rows_neon:
    /// the same bits, two passes fewer); elsewhere, and for Shiftmax, the
    /// probabilities are written and then quantised.
    func softmaxToInt8(_ scores: UnsafeMutablePointer<Float>, T: Int, scale: Float, q: UnsafeMutablePointer<Int8>,
                       scales: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Int32>) {
        #if arch(arm64)
        if options.softmax != .integer {
            fips_softmax_quantize_rows_neon(scores, T, Int32(T), Int32(T), scale, q, scales, sums)
            return
        }
        #endif
        softmaxRows(MutableMatrixRef(scores, rows: T, cols: T), scale: scale)
        _ = fips_quantize_rows(kernel, scores, T, Int32(T), Int32(T), nil, q, scales, sums)
    }

    /// Rearranges quantised rows [rows, paddedCols] (a multiple of 32) into
    /// q8 tiles: tile (p, b) byte g·64 + c·4 + t = row 16p+c, column 32b+4g+t.
    /// Rows past `rows` are zero with scale 0. The same layout as
    /// fips_qpack's q8, which is not used here: it goes byte by byte with a
    /// range check, and this runs twice per head per block on the hot path.
    static func packQ8Tiles(_ src: UnsafePointer<Int8>, rows: Int, paddedCols: Int, scales: UnsafePointer<Float>,
                            into dst: UnsafeMutablePointer<Int8>, packedScales: UnsafeMutablePointer<Float>) {
        let shape = PackedShape(rows: rows, cols: paddedCols)
        let panels = shape.panels, blocks = shape.kBlocks, tileBytes = QuantFormat.q8.tileBytes
        let out = UnsafeMutableRawPointer(dst)
        let inp = UnsafeRawPointer(src)
        for p in 0..<panels {
            for b in 0..<blocks {
                let tile = out + (p * blocks + b) * tileBytes
                for c in 0..<16 {
                    let r = 16 * p + c
                    for g in 0..<8 {
                        let word: UInt32 = r < rows ? inp.loadUnaligned(fromByteOffset: r * paddedCols + 32 * b + 4 * g, as: UInt32.self) : 0
                        tile.storeBytes(of: word, toByteOffset: g * 64 + c * 4, as: UInt32.self)
                    }
                }
            }
            for c in 0..<16 { packedScales[16 * p + c] = 16 * p + c < rows ? scales[16 * p + c] : 0 }
        }
    }
}
