/// Canonical tensor names inside an artifact. Linear weights are stored
/// [out, in] (row = output channel), so per-output-channel quantisation
/// scales one row each.
public enum TensorNames {
    public static let patchWeight = "patch_embed.weight"   // [dim, channels*patch*patch], (c, ky, kx) order
    public static let patchBias = "patch_embed.bias"       // [dim]
    public static let clsToken = "cls_token"               // [dim]
    public static let distToken = "dist_token"             // [dim], distilled DeiT only (config flag bit 2)
    public static let posEmbed = "pos_embed"               // [tokens, dim], already at the model's grid
    public static let normWeight = "norm.weight"
    public static let normBias = "norm.bias"
    public static let headWeight = "head.weight"           // [classes, headInputDim]
    public static let headBias = "head.bias"

    public static func block(_ i: Int, _ leaf: String) -> String { "blocks.\(i).\(leaf)" }

    /// Per-block leaves, in the order the executor uses them.
    public static let blockLeaves: [String] = [
        "norm1.weight", "norm1.bias",
        "attn.qkv.weight", "attn.qkv.bias",      // [3*dim, dim], rows q..k..v
        "attn.proj.weight", "attn.proj.bias",
        "ls1",                                    // [dim] (only with LayerScale)
        "norm2.weight", "norm2.bias",
        "mlp.fc1.weight", "mlp.fc1.bias",         // [mlp, dim]
        "mlp.fc2.weight", "mlp.fc2.bias",         // [dim, mlp]
        "ls2",
    ]
}
