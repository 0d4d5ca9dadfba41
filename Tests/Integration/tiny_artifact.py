"""Writes small random .fips files (version 1, f32 tensors; version 4 with a
distillation token) straight from docs/ARTIFACT.md, without the kit's writer:
the model variants that the real artifacts in data/ do not cover (tanh GELU,
no LayerScale, a head on concat(CLS, mean of patch tokens), a FiPS group whose
basis two blocks share, distilled DeiT's distillation token with the head on
concat(CLS, distillation token)).
check_export.py exports and runs them like the real ones."""
import struct
import zlib

import numpy as np

ALIGN = 64


def _align(x):
    return (x + ALIGN - 1) // ALIGN * ALIGN


def _f32_bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def tiny_tensors(rng, dim, depth, mlp, tokens, patch_len, classes, head_in, layer_scale, fips_rank, distilled=False):
    """(name, array) in the writer's order; arrays float32 [out, in] for linear maps."""
    def r(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    t = [("patch_embed.weight", r(dim, patch_len, scale=0.1)), ("patch_embed.bias", r(dim)),
         ("cls_token", r(dim)), ("pos_embed", r(tokens, dim))]
    if distilled:
        t.append(("dist_token", r(dim)))
    basis = r(dim, fips_rank) if fips_rank else None
    for i in range(depth):
        b = "blocks.%d." % i
        t += [(b + "norm1.weight", 1 + r(dim, scale=0.1)), (b + "norm1.bias", r(dim, scale=0.1)),
              (b + "attn.qkv.weight", r(3 * dim, dim, scale=0.3)), (b + "attn.qkv.bias", r(3 * dim, scale=0.1)),
              (b + "attn.proj.weight", r(dim, dim, scale=0.3)), (b + "attn.proj.bias", r(dim, scale=0.1))]
        if layer_scale:
            t.append((b + "ls1", r(dim)))
        t += [(b + "norm2.weight", 1 + r(dim, scale=0.1)), (b + "norm2.bias", r(dim, scale=0.1))]
        if fips_rank:
            t += [(b + "mlp.fc1.U", basis), (b + "mlp.fc1.V", r(fips_rank, mlp, scale=0.3)), (b + "mlp.fc1.bias", r(mlp, scale=0.1)),
                  (b + "mlp.fc2.U", basis), (b + "mlp.fc2.V", r(fips_rank, mlp, scale=0.3)), (b + "mlp.fc2.bias", r(dim, scale=0.1))]
        else:
            t += [(b + "mlp.fc1.weight", r(mlp, dim, scale=0.3)), (b + "mlp.fc1.bias", r(mlp, scale=0.1)),
                  (b + "mlp.fc2.weight", r(dim, mlp, scale=0.2)), (b + "mlp.fc2.bias", r(dim, scale=0.1))]
        if layer_scale:
            t.append((b + "ls2", r(dim)))
    t += [("norm.weight", 1 + r(dim, scale=0.1)), ("norm.bias", r(dim, scale=0.1))]
    if classes:
        t += [("head.weight", r(classes, head_in, scale=0.3)), ("head.bias", r(classes, scale=0.1))]
    return t


def write_tiny(path, seed=0, image=28, patch=14, dim=16, depth=2, heads=2, mlp=40, classes=3,
               gelu_tanh=False, layer_scale=True, mean_pool=False, fips_rank=0, distilled=False):
    rng = np.random.default_rng(seed)
    tokens = (image // patch) ** 2 + (2 if distilled else 1)
    tensors = tiny_tensors(rng, dim, depth, mlp, tokens, 3 * patch * patch, classes,
                           2 * dim if mean_pool or distilled else dim, layer_scale, fips_rank, distilled)
    words = [3 if distilled else 1, image, patch, 3, dim, depth, heads, mlp, classes, _f32_bits(1e-6),
             (1 if layer_scale else 0) | (2 if gelu_tanh else 0) | (4 if distilled else 0),
             2 if distilled else 1 if mean_pool else 0, image + 4, image]
    words += [_f32_bits(v) for v in (0.485, 0.456, 0.406, 0.229, 0.224, 0.225)] + [0, 0, 0, 0]
    labels = [b"class %d" % k for k in range(classes)]
    meta = struct.pack("<I", len(words)) + struct.pack("<%dI" % len(words), *words) + struct.pack("<I", len(labels))
    meta += b"".join(struct.pack("<I", len(l)) + l for l in labels)
    table_offset = _align(64 + len(meta))
    at = _align(table_offset + 128 * len(tensors))
    placed, entries, blobs = {}, [], []
    for name, a in tensors:
        raw = np.ascontiguousarray(a, "<f4").tobytes()
        if raw not in placed:  # identical tensors stored once, as the kit's writer does
            at = _align(at)
            placed[raw] = at
            blobs.append((at, raw))
            at += len(raw)
        dims = list(a.shape) + [0] * (4 - a.ndim)
        entries.append(name.encode().ljust(64, b"\0") + struct.pack("<BBH4II", 0, a.ndim, 0, *dims, 0)
                       + struct.pack("<5Q", placed[raw], len(raw), 0, 0, 0))
    out = bytearray(at)
    out[64:64 + len(meta)] = meta
    out[table_offset:table_offset + 128 * len(entries)] = b"".join(entries)
    for off, raw in blobs:
        out[off:off + len(raw)] = raw
    out[0:56] = struct.pack("<8sIIQQQQII", b"FIPSMODL", 4 if distilled else 1, 64, len(out), 64, len(meta), table_offset, len(tensors), 128)
    struct.pack_into("<I", out, 56, zlib.crc32(bytes(out[64:])) & 0xFFFFFFFF)
    struct.pack_into("<I", out, 60, zlib.crc32(bytes(out[:60])) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(out)
