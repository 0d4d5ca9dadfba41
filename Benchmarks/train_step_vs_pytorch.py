#!/usr/bin/env python3
"""One fine-tuning training step, the kit's Swift trainer against PyTorch on the CPU, same shapes, same threads, in one run.

    python3 Benchmarks/train_step_vs_pytorch.py [--threads 2] [--batch 32] [--steps 5] [--rounds 2]

The step: forward + backward of a DINOv2-S/14-shaped student over a batch of
random 224x224 images, loss MSE(final-LayerNorm features of all 257 tokens,
zeros); patch embedding frozen, no head, no optimiser step (gradients of
everything else, cls_token and pos_embed included).

Rows:
  fips-bench train-step (FipsTrain.TrainingStepTimer on data/dinov2_s.fips:
  the batch split over the threads, one image at a time per worker, OpenBLAS
  single-threaded inside, gradients reduced);
  PyTorch, the same ViT written out below (random weights: speed does not
  depend on them), attention as matmul-softmax-matmul, and a second row with
  torch.nn.functional.scaled_dot_product_attention; torch.set_num_threads(threads),
  the whole batch as one tensor.
Each engine runs in its own process, one warm-up step then --steps timed steps;
the engines alternate (Swift, PyTorch, PyTorch SDPA) --rounds times so drift on
a shared machine hits all; each row is the median of all its timed steps.
PyTorch's OpenMP threads spin at their barriers by default: on a machine
busy with other work that costs it a lot (OMP_WAIT_POLICY=PASSIVE in the
environment, which the children inherit, is the remedy; the table notes it
and the load average). Writes Benchmarks/train_step_results.md. Needs scripts/setup.sh (torch, the
model) and swift build -c release --product fips-bench.
"""
import argparse
import json
import os
import statistics
import sys
import time

import bench_common as bench
from bench_common import FIPS_BENCH, ROOT

MODEL = os.path.join(ROOT, "data/dinov2_s.fips")

# DINOv2-S/14: 224x224, patch 14, 257 tokens, dim 384, 12 blocks, 6 heads, MLP 1536.
IMAGE, PATCH, DIM, DEPTH, HEADS, MLP = 224, 14, 384, 12, 6, 1536
TOKENS = (IMAGE // PATCH) ** 2 + 1


def build_vit(sdpa):
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(DIM, eps=1e-6)
            self.qkv = nn.Linear(DIM, 3 * DIM)
            self.proj = nn.Linear(DIM, DIM)
            self.ls1 = nn.Parameter(torch.full((DIM,), 0.1))
            self.norm2 = nn.LayerNorm(DIM, eps=1e-6)
            self.fc1 = nn.Linear(DIM, MLP)
            self.fc2 = nn.Linear(MLP, DIM)
            self.ls2 = nn.Parameter(torch.full((DIM,), 0.1))

        def attention(self, x):
            b, n, d = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4)
            if sdpa:
                o = F.scaled_dot_product_attention(q, k, v)
            else:
                a = (q * (d // HEADS) ** -0.5) @ k.transpose(-2, -1)
                o = a.softmax(dim=-1) @ v
            return self.proj(o.transpose(1, 2).reshape(b, n, d))

        def forward(self, x):
            x = x + self.ls1 * self.attention(self.norm1(x))
            return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))  # exact erf GELU

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, DIM, PATCH, PATCH).requires_grad_(False)  # frozen, as in the kit
            self.cls_token = nn.Parameter(torch.randn(1, 1, DIM) * 0.02)
            self.pos_embed = nn.Parameter(torch.randn(1, TOKENS, DIM) * 0.02)
            self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
            self.norm = nn.LayerNorm(DIM, eps=1e-6)

        def forward(self, img):
            x = self.patch(img).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x)

    return ViT()


def pytorch_child(threads, batch, steps, sdpa):
    """Runs in its own process: one warm-up step, then `steps` timed ones; prints one JSON line."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_vit(sdpa).train()
    images = torch.rand(batch, 3, IMAGE, IMAGE) * 2 - 1
    zeros = torch.zeros(batch, TOKENS, DIM)
    seconds = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        F.mse_loss(model(images), zeros).backward()
        if s > 0:
            seconds.append(time.perf_counter() - t0)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": batch,
                      "sdpa": sdpa, "seconds": seconds}))


def time_pytorch(a, sdpa):
    cmd = [sys.executable, os.path.abspath(__file__), "--pytorch-child", "sdpa" if sdpa else "matmul",
           "--threads", str(a.threads), "--batch", str(a.batch), "--steps", str(a.steps)]
    p = bench.run(cmd, echo=bench.shown(cmd), fail=lambda p: f"PyTorch child failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def time_swift(a):
    cmd = [FIPS_BENCH, "train-step", "--model", a.model, "--batch", str(a.batch), "--threads", str(a.threads),
           "--steps", str(a.steps)]
    p = bench.run(cmd, echo=bench.shown(cmd),
                  fail=lambda p: f"fips-bench failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per engine per round, after one warm-up step")
    ap.add_argument("--rounds", type=int, default=2, help="times the engines alternate")
    ap.add_argument("--model", default=MODEL, help="the kit's model (DINOv2-S/14 shapes for a like-for-like row)")
    ap.add_argument("--pytorch-child", choices=["matmul", "sdpa"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pytorch_child:
        return pytorch_child(a.threads, a.batch, a.steps, a.pytorch_child == "sdpa")

    for path, hint in [(FIPS_BENCH, "swift build -c release --product fips-bench"), (a.model, "scripts/setup.sh")]:
        if not os.path.exists(path):
            sys.exit(f"{os.path.relpath(path, ROOT)} is missing: run {hint}")
    command = "python3 " + " ".join([os.path.relpath(os.path.abspath(__file__), os.getcwd())] + sys.argv[1:])

    load_before = os.getloadavg()[0]
    seconds = {"swift": [], "torch": [], "torch_sdpa": []}
    torch_version = None
    for _ in range(a.rounds):
        seconds["swift"] += time_swift(a)["seconds"]
        for key, sdpa in [("torch", False), ("torch_sdpa", True)]:
            r = time_pytorch(a, sdpa)
            seconds[key] += r["seconds"]
            torch_version = r["torch"]
    med = {k: statistics.median(v) for k, v in seconds.items()}
    ref = med["torch"]

    lines = [f"One fine-tuning step (forward + backward, MSE of final-LayerNorm features vs zeros, no optimiser) "
             f"of DINOv2-S/14 (257 tokens, dim 384, 12 blocks), batch {a.batch}, {a.threads} threads, "
             f"median of {a.steps} steps x {a.rounds} rounds after one warm-up step per run, torch {torch_version}",
             "",
             "| implementation | threads | batch | median s/step | images/s | ratio to PyTorch |",
             "|---|---|---|---|---|---|"]
    for key, label in [("swift", f"FipsTrain (fips-bench train-step, {os.path.relpath(a.model, ROOT)})"),
                       ("torch", "PyTorch, matmul-softmax-matmul attention"),
                       ("torch_sdpa", "PyTorch, scaled_dot_product_attention")]:
        lines.append(f"| {label} | {a.threads} | {a.batch} | {med[key]:.3f} | {a.batch / med[key]:.2f} | "
                     f"{med[key] / ref:.2f}x |")
    lines += ["", "Every step, in seconds: " + "; ".join(
        f"{k} " + ", ".join(f"{s:.3f}" for s in v) for k, v in seconds.items()),
        "", f"Load average (1 min) before and after: {load_before:.2f}, {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} CPUs; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}",
        "", f"Command: `{command}`"]
    print("\n".join(lines))
    with open(os.path.join(ROOT, "Benchmarks/train_step_results.md"), "w") as fh:
        fh.write("<!-- written by Benchmarks/train_step_vs_pytorch.py -->\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
