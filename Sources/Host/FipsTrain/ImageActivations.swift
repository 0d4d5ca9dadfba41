import FipsArtifact

/// Everything the backward of one image needs from its forward, plus the
/// backward's scratch, in one allocation with named fields (shapes in the
/// comments; T tokens, d width, m MLP width, r the largest factor rank,
/// H heads). One per worker thread; about 110 MB for ViT-S/14.
final class ImageActivations {
    struct Block {
        var x: UnsafeMutablePointer<Float>       // [T, d] block input
        var h1: UnsafeMutablePointer<Float>      // [T, d] LN1(x)
        var mean1, rstd1: UnsafeMutablePointer<Float>  // [T]
        var qkv: UnsafeMutablePointer<Float>     // [T, 3d]
        var probs: UnsafeMutablePointer<Float>   // [H, T, T]
        var attn: UnsafeMutablePointer<Float>    // [T, d] heads concatenated
        var proj: UnsafeMutablePointer<Float>    // [T, d] attn·Wprojᵀ + b (before LayerScale)
        var x2: UnsafeMutablePointer<Float>      // [T, d] x + ls1·proj
        var h2: UnsafeMutablePointer<Float>      // [T, d] LN2(x2)
        var mean2, rstd2: UnsafeMutablePointer<Float>  // [T]
        var z: UnsafeMutablePointer<Float>       // [T, r] h2·U1 (factorised MLP)
        var g: UnsafeMutablePointer<Float>       // [T, m] GELU(a)
        var dgelu: UnsafeMutablePointer<Float>   // [T, m] GELU'(a)
        var q: UnsafeMutablePointer<Float>       // [T, r] g·V2ᵀ (factorised MLP)
        var mlp: UnsafeMutablePointer<Float>     // [T, d] MLP output (before LayerScale)
    }

    let config: ViTConfig
    let rank: Int
    var blocks: [Block] = []
    let patches: UnsafeMutablePointer<Float>  // [P, C·p·p] the image cut into patches
    let xFinal: UnsafeMutablePointer<Float>   // [T, d] last block's output
    let features: UnsafeMutablePointer<Float> // [T, d] final LayerNorm
    let meanF, rstdF: UnsafeMutablePointer<Float>  // [T]
    let pooled: UnsafeMutablePointer<Float>   // [headInputDim]
    let logits: UnsafeMutablePointer<Float>   // [classes]
    // backward scratch
    let dx: UnsafeMutablePointer<Float>       // [T, d] gradient of the residual stream
    let dtmp: UnsafeMutablePointer<Float>     // [T, d]
    let dwide: UnsafeMutablePointer<Float>    // [T, max(m, 3d)]
    let dnarrow: UnsafeMutablePointer<Float>  // [T, max(r, d)]
    let dprobs: UnsafeMutablePointer<Float>   // [T, T]
    let dfeatures: UnsafeMutablePointer<Float>  // [T, d] loss gradient w.r.t. features
    let dlogits: UnsafeMutablePointer<Float>  // [classes]
    let dpooled: UnsafeMutablePointer<Float>  // [headInputDim]
    // quantisation-aware training: int8 rounding of activations, and
    let rounder: ActivationRounder
    let attnScratch: UnsafeMutablePointer<Float>  // [T, max(T, d)] V per head transposed, then P̂
    private let base: UnsafeMutablePointer<Float>

    /// `keepAll`: storage for every block (training); false keeps one block's worth, reused (teacher / evaluation).
    init(config c: ViTConfig, rank r: Int, keepAll: Bool = true) {
        config = c; rank = r
        let T = c.tokenCount, d = c.dim, m = c.mlpDim, H = c.heads
        let perBlock = T * (7 * d + 3 * d + 2 * m + 2 * max(r, 1) + 4) + H * T * T
        let stored = keepAll ? c.depth : 1
        let patchLen = c.channels * c.patchSize * c.patchSize
        let fixed = c.patchCount * patchLen + 3 * T * d + 2 * T + 2 * c.headInputDim + 2 * max(c.numClasses, 1)
            + T * d * 2 + T * max(m, 3 * d) + T * max(r, d) + T * T + T * max(T, d)
        let total = stored * perBlock + fixed
        base = .allocate(capacity: total)
        base.initialize(repeating: 0, count: total)
        var p = base
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { p += n }; return p }
        for _ in 0..<stored {
            blocks.append(Block(x: take(T * d), h1: take(T * d), mean1: take(T), rstd1: take(T), qkv: take(3 * T * d),
                                probs: take(H * T * T), attn: take(T * d), proj: take(T * d), x2: take(T * d), h2: take(T * d),
                                mean2: take(T), rstd2: take(T), z: take(T * max(r, 1)), g: take(T * m), dgelu: take(T * m),
                                q: take(T * max(r, 1)), mlp: take(T * d)))
        }
        patches = take(c.patchCount * patchLen)
        xFinal = take(T * d); features = take(T * d); meanF = take(T); rstdF = take(T)
        pooled = take(c.headInputDim); logits = take(max(c.numClasses, 1))
        dx = take(T * d); dtmp = take(T * d); dwide = take(T * max(m, 3 * d)); dnarrow = take(T * max(r, d))
        dprobs = take(T * T); dfeatures = take(T * d)
        dlogits = take(max(c.numClasses, 1)); dpooled = take(c.headInputDim)
        attnScratch = take(T * max(T, d))
        rounder = ActivationRounder(maxRows: max(T, d), maxCols: max(m, 3 * d, T, max(r, 1), c.headInputDim))
        precondition(p - base <= total, "activation layout overflows its allocation")
    }

    deinit { base.deallocate() }

    /// The integer runtime's attention on this worker's scratch.
    var integerAttention: IntegerAttention { IntegerAttention(rounder: rounder, scratch: attnScratch) }

    /// Storage for block i (block 0's when only one is kept).
    func block(_ i: Int) -> Block { blocks.count == 1 ? blocks[0] : blocks[i] }
}
