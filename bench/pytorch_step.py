#!/usr/bin/env python3
"""The same GPT training step in PyTorch, beside memfront's CUDA backend.

Runs memfront's model (kernels/model.h: token + position embedding, L blocks of
[LayerNorm, causal multi-head attention, residual, LayerNorm, MLP 4C with tanh
GELU, residual], final LayerNorm, LM head tied to the token embedding, softmax
cross-entropy, AdamW) at bench_gpu's shapes, fp32 or bf16 GEMMs, and measures
the median step time (CUDA events) and torch.cuda.max_memory_allocated.

With --memfront FILE (bench_gpu's --benchmark_out=FILE JSON), prints, per
shape and compute type, memfront's step time and arena peak beside PyTorch's
and the two ratios (memfront / PyTorch).

    ./build/bench/bench_gpu --benchmark_filter=step/ --benchmark_out=gpu.json
    python3 bench/pytorch_step.py --memfront gpu.json
"""
import argparse
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F

# bench_gpu.cpp's shapes: (vocab, seq, width, heads, layers, micro-batch).
SHAPES = {
    "medium": (2048, 128, 256, 8, 6, 8),
    "large": (16384, 512, 1024, 16, 12, 8),
}


class Gpt(torch.nn.Module):
    def __init__(self, vocab, seq, width, heads, layers):
        super().__init__()
        self.heads = heads
        self.wte = torch.nn.Parameter(torch.randn(vocab, width) * 0.02)
        self.wpe = torch.nn.Parameter(torch.randn(seq, width) * 0.02)
        self.blocks = torch.nn.ModuleList()
        for _ in range(layers):
            block = torch.nn.Module()
            block.ln1 = torch.nn.LayerNorm(width, eps=1e-5)
            block.qkv = torch.nn.Linear(width, 3 * width)
            block.proj = torch.nn.Linear(width, width)
            block.ln2 = torch.nn.LayerNorm(width, eps=1e-5)
            block.fc = torch.nn.Linear(width, 4 * width)
            block.fcproj = torch.nn.Linear(4 * width, width)
            self.blocks.append(block)
        self.lnf = torch.nn.LayerNorm(width, eps=1e-5)

    def attention(self, qkv):
        B, T, C3 = qkv.shape
        C, H = C3 // 3, self.heads
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        # Explicit scores and softmax, as memfront computes them (and saves
        # the probabilities for backward), not a fused attention kernel.
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        mask = torch.ones(T, T, dtype=torch.bool, device=qkv.device).tril()
        probs = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return (probs @ v).transpose(1, 2).reshape(B, T, C)

    def forward(self, inputs, targets):
        T = inputs.shape[1]
        x = self.wte[inputs] + self.wpe[:T]
        for b in self.blocks:
            x = x + b.proj(self.attention(b.qkv(b.ln1(x))))
            x = x + b.fcproj(F.gelu(b.fc(b.ln2(x)), approximate="tanh"))
        logits = self.lnf(x) @ self.wte.t()
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def measure(shape, compute, steps, warmup):
    vocab, seq, width, heads, layers, micro = SHAPES[shape]
    torch.manual_seed(42)
    device = torch.device("cuda")
    model = Gpt(vocab, seq, width, heads, layers).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    inputs = torch.randint(0, vocab, (micro, seq), device=device)
    targets = torch.randint(0, vocab, (micro, seq), device=device)
    # memfront's fp32 GEMMs use no TF32; its bf16 GEMMs run bf16 tensor cores
    # with fp32 accumulation, which autocast gives here.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=(compute == "bf16"))

    def step():
        optimizer.zero_grad(set_to_none=False)
        with autocast:
            loss = model(inputs, targets)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return {"step_s": statistics.median(times), "peak_bytes": torch.cuda.max_memory_allocated()}


def memfront_steps(path):
    """{(shape, compute): (step seconds, arena peak bytes)} from bench_gpu's JSON output."""
    with open(path) as f:
        report = json.load(f)
    found = {}
    for bench in report.get("benchmarks", []):
        parts = bench["name"].split("/")
        if len(parts) < 3 or parts[0] != "step" or bench.get("error_occurred"):
            continue
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
        found[(parts[1], parts[2])] = (bench["real_time"] * unit, bench["arena_peak_MiB"] * (1 << 20))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="medium,large")
    parser.add_argument("--compute", default="fp32,bf16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--memfront", help="bench_gpu --benchmark_out JSON to compare with")
    parser.add_argument("--json", help="also write the rows here, as a JSON list")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("pytorch_step.py: no CUDA device visible to PyTorch")
    memfront = memfront_steps(args.memfront) if args.memfront else {}
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}")
    print(f"{'shape':8} {'compute':7} {'pytorch ms':>10} {'memfront ms':>11} {'time ratio':>10} "
          f"{'pytorch MiB':>11} {'memfront MiB':>12} {'memory ratio':>12}")
    rows = []
    for shape in args.shapes.split(","):
        for compute in args.compute.split(","):
            torch_result = measure(shape, compute, args.steps, args.warmup)
            row = {"shape": shape, "compute": compute, "pytorch_step_s": torch_result["step_s"],
                   "pytorch_peak_bytes": torch_result["peak_bytes"]}
            rows.append(row)
            line = f"{shape:8} {compute:7} {torch_result['step_s'] * 1e3:10.2f}"
            mem_torch = torch_result["peak_bytes"] / (1 << 20)
            if (shape, compute) in memfront:
                step_s, peak = memfront[(shape, compute)]
                row.update({"memfront_step_s": step_s, "memfront_peak_bytes": peak,
                            "time_ratio": step_s / torch_result["step_s"],
                            "memory_ratio": peak / torch_result["peak_bytes"]})
                line += (f" {step_s * 1e3:11.2f} {step_s / torch_result['step_s']:10.2f}"
                         f" {mem_torch:11.1f} {peak / (1 << 20):12.1f} {peak / torch_result['peak_bytes']:12.2f}")
            else:
                line += f" {'-':>11} {'-':>10} {mem_torch:11.1f} {'-':>12} {'-':>12}"
            print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
