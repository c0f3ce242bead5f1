#!/usr/bin/env python3
"""The same GPT training step in PyTorch, beside memfront's CUDA or CPU backend.

Runs memfront's model (kernels/model.h: token + position embedding, L blocks of
[LayerNorm, causal multi-head attention, residual, LayerNorm, MLP 4C with tanh
GELU, residual], final LayerNorm, LM head tied to the token embedding, softmax
cross-entropy, AdamW) and measures the median step time.

--device cuda (default): bench_gpu's shapes, fp32 or bf16 GEMMs, CUDA-event
times and torch.cuda.max_memory_allocated. With --memfront FILE (bench_gpu's
--benchmark_out=FILE JSON), prints, per shape and compute type, memfront's step
time and arena peak beside PyTorch's and the two ratios (memfront / PyTorch).

    ./build/bench/bench_gpu --benchmark_filter=step/ --benchmark_out=gpu.json
    python3 bench/pytorch_step.py --memfront gpu.json

--device cpu: bench_step's shapes (small, medium; fp32), one thread
(torch.set_num_threads(1), as bench_step runs OpenBLAS), times in CPU seconds
of the process per step (bench_step's rates are per CPU second too, which
keeps both steady on a busy machine). Attention is written out (scores,
mask, softmax, as memfront computes it) or, with --attention sdpa, PyTorch's
scaled_dot_product_attention. --bench-step PATH runs bench_step's dense_fp32
steps first and compares with them, so one command gives memfront / PyTorch:

    python3 bench/pytorch_step.py --device cpu --bench-step ./build/bench/bench_step \
        --attention explicit,sdpa

(--memfront FILE takes an earlier `bench_step --benchmark_out=FILE` instead.)
"""
import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

# bench_gpu.cpp's shapes (cuda) and bench_step.cpp's (cpu): (vocab, seq, width,
# heads, layers, micro-batch).
SHAPES = {
    "cuda": {
        "medium": (2048, 128, 256, 8, 6, 8),
        "large": (16384, 512, 1024, 16, 12, 8),
    },
    "cpu": {
        "small": (256, 64, 64, 4, 4, 4),
        "medium": (2048, 128, 256, 8, 6, 8),
    },
}


class Gpt(torch.nn.Module):
    def __init__(self, vocab, seq, width, heads, layers, attention="explicit"):
        super().__init__()
        self.heads = heads
        self.fused_attention = attention == "sdpa"
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
        if self.fused_attention:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
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


def measure(device, shape, compute, attention, steps, warmup):
    vocab, seq, width, heads, layers, micro = SHAPES[device][shape]
    torch.manual_seed(42)
    model = Gpt(vocab, seq, width, heads, layers, attention).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    inputs = torch.randint(0, vocab, (micro, seq), device=device)
    targets = torch.randint(0, vocab, (micro, seq), device=device)
    # memfront's fp32 GEMMs use no TF32; its bf16 GEMMs run bf16 tensor cores
    # with fp32 accumulation, which autocast gives here.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=(compute == "bf16"))

    def step():
        optimizer.zero_grad(set_to_none=False)
        with autocast:
            loss = model(inputs, targets)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    times = []
    if device == "cpu":
        for _ in range(steps):
            start = time.process_time()
            step()
            times.append(time.process_time() - start)
        return {"step_s": statistics.median(times), "peak_bytes": None}
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return {"step_s": statistics.median(times), "peak_bytes": torch.cuda.max_memory_allocated()}


def memfront_steps(path, device):
    """{(shape, compute): (step seconds, arena peak bytes or None)} from bench_gpu's
    (cuda) or bench_step's (cpu: dense_fp32 steps, CPU seconds) JSON output."""
    with open(path) as f:
        report = json.load(f)
    found = {}
    for bench in report.get("benchmarks", []):
        parts = bench["name"].split("/")
        if len(parts) < 3 or parts[0] != "step" or bench.get("error_occurred"):
            continue
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
        if device == "cpu":
            # With --benchmark_repetitions the mean comes as its own entry.
            if parts[2] != "dense_fp32" or bench.get("run_type") == "aggregate" and bench.get("aggregate_name") != "mean":
                continue
            found[(parts[1], "fp32")] = (bench["cpu_time"] * unit, None)
        else:
            found[(parts[1], parts[2])] = (bench["real_time"] * unit, bench["arena_peak_MiB"] * (1 << 20))
    return found


def run_bench_step(bench_step, shapes):
    """Runs bench_step's dense_fp32 steps of `shapes` and returns its JSON output's path."""
    out = tempfile.NamedTemporaryFile(prefix="bench_step.", suffix=".json", delete=False).name
    pattern = "^step/(" + "|".join(shapes) + ")/dense_fp32/"
    subprocess.run([bench_step, "--benchmark_filter=" + pattern, "--benchmark_out=" + out], check=True)
    return out


def mib(value):
    return "-" if value is None else f"{value / (1 << 20):.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--shapes", help="default: medium,large (cuda), small,medium (cpu)")
    parser.add_argument("--compute", help="default: fp32,bf16 (cuda), fp32 (cpu)")
    parser.add_argument("--attention", default="explicit", help="explicit, sdpa or both, comma-separated")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--memfront", help="bench_gpu (cuda) or bench_step (cpu) --benchmark_out JSON to compare with")
    parser.add_argument("--bench-step", help="cpu: run this bench_step first and compare with it")
    parser.add_argument("--json", help="also write the rows here, as a JSON list")
    args = parser.parse_args()
    device = args.device
    shapes = (args.shapes or ",".join(SHAPES[device])).split(",")
    computes = (args.compute or ("fp32,bf16" if device == "cuda" else "fp32")).split(",")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("pytorch_step.py: no CUDA device visible to PyTorch")
    if device == "cpu":
        torch.set_num_threads(1)
    memfront_file = args.memfront
    if args.bench_step:
        memfront_file = run_bench_step(args.bench_step, shapes)
    memfront = memfront_steps(memfront_file, device) if memfront_file else {}
    where = torch.cuda.get_device_name() if device == "cuda" else "the CPU, 1 thread, CPU seconds"
    print(f"PyTorch {torch.__version__} on {where}")
    print(f"{'shape':8} {'compute':7} {'attention':9} {'pytorch ms':>10} {'memfront ms':>11} {'time ratio':>10} "
          f"{'pytorch MiB':>11} {'memfront MiB':>12} {'memory ratio':>12}")
    rows = []
    for shape in shapes:
        for compute in computes:
            for attention in args.attention.split(","):
                torch_result = measure(device, shape, compute, attention, args.steps, args.warmup)
                row = {"shape": shape, "compute": compute, "attention": attention,
                       "pytorch_step_s": torch_result["step_s"], "pytorch_peak_bytes": torch_result["peak_bytes"]}
                rows.append(row)
                line = f"{shape:8} {compute:7} {attention:9} {torch_result['step_s'] * 1e3:10.2f}"
                torch_peak = torch_result["peak_bytes"]
                if (shape, compute) in memfront:
                    step_s, peak = memfront[(shape, compute)]
                    memory_ratio = peak / torch_peak if peak and torch_peak else None
                    row.update({"memfront_step_s": step_s, "memfront_peak_bytes": peak,
                                "time_ratio": step_s / torch_result["step_s"], "memory_ratio": memory_ratio})
                    line += (f" {step_s * 1e3:11.2f} {step_s / torch_result['step_s']:10.2f}"
                             f" {mib(torch_peak):>11} {mib(peak):>12}"
                             f" {'-' if memory_ratio is None else f'{memory_ratio:.2f}':>12}")
                else:
                    line += f" {'-':>11} {'-':>10} {mib(torch_peak):>11} {'-':>12} {'-':>12}"
                print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
