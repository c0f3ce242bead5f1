#!/usr/bin/env python3
"""Every figure of a GPU run (scripts/gpu-check.sh) with its goal, as Markdown.

Reads what gpu-check.sh left in its output folder: ctest.log, bench_gpu.json,
pytorch.json, gpu-quickstart.jsonl and cpu-reference.json. A missing input
gives a line saying so, never a failure: the summary reports what ran.
The goals are issue 11's: arena vs pool vs CUPTI within 1%, memory-bound
kernels >= 0.8 of the copy bandwidth, memfront/PyTorch step time <= 0.8 and
peak memory <= 1.0, host probe <= 2% and CUPTI activity <= 10% overhead.

    python3 scripts/gpu_summary.py --out DIR > DIR/summary.md
"""
import argparse
import json
import os
import re

# (goal text, test) for each kind of ratio.
GOALS = {
    "copy": ("≥ 0.80", lambda r: r >= 0.8),
    "memory_agreement": ("within 1%", lambda r: abs(r - 1) <= 0.01),
    "time_vs_pytorch": ("≤ 0.80", lambda r: r <= 0.8),
    "memory_vs_pytorch": ("≤ 1.00", lambda r: r <= 1.0),
    "probe/host": ("≤ 1.02", lambda r: r <= 1.02),
    "probe/cupti_activity": ("≤ 1.10", lambda r: r <= 1.10),
}


def verdict(kind, ratio):
    goal, test = GOALS[kind]
    return f"{goal} | {'met' if test(ratio) else 'missed'}"


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        print(f"\n_{os.path.basename(path)}: not read ({error})_")
        return None


def load_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as error:
        print(f"\n_{os.path.basename(path)}: not read ({error})_")
        return []


def ctest_section(out):
    print("\n## GPU tests (`ctest -L gpu`)\n")
    try:
        with open(os.path.join(out, "ctest.log")) as f:
            text = f.read()
    except OSError as error:
        print(f"_ctest.log: not read ({error})_")
        return
    rows = re.findall(r"Test\s+#\d+: (\S+) \.+\**\s*(Passed|Failed|Skipped|\*\*\*\w+|Not Run|Timeout|\w+)", text)
    counts = {}
    for _, status in rows:
        counts[status] = counts.get(status, 0) + 1
    print("| outcome | tests |\n|---|---|")
    for status, count in sorted(counts.items()):
        print(f"| {status} | {count} |")
    for label, wanted in (("Failed or not run", lambda s: s not in ("Passed", "Skipped")),
                          ("Skipped", lambda s: s == "Skipped")):
        names = [name for name, status in rows if wanted(status)]
        if names:
            print(f"\n{label}: " + ", ".join(f"`{name}`" for name in names))
    total = re.findall(r"^\d+% tests passed.*$", text, re.M)
    if total:
        print(f"\nCTest: {total[-1]}")


def bench_section(out):
    report = load_json(os.path.join(out, "bench_gpu.json"))
    if not report:
        return
    rates, times = {}, {}
    for bench in report.get("benchmarks", []):
        if bench.get("error_occurred"):
            continue
        name = bench["name"].removesuffix("/manual_time")
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[bench["time_unit"]]
        times[name] = bench["real_time"] * unit
        for counter in ("bytes_per_s", "flop_per_s"):
            if counter in bench:
                rates[name] = bench[counter]
    if "copy/d2d" not in rates:
        print("\n_bench_gpu measured nothing (no device?)_")
        return
    copy = rates["copy/d2d"]
    print(f"\n## Kernels and steps (`bench_gpu`)\n\nDevice-to-device copy: {copy * 1e-9:.1f} GB/s "
          "(bytes read + written).\n")
    print("| memory-bound kernel | GB/s | ÷ copy | goal | |\n|---|---|---|---|---|")
    for name, rate in sorted(rates.items()):
        if name.startswith(("layernorm/", "quantize_rows/", "dequantize_rows/")):
            print(f"| {name} | {rate * 1e-9:.1f} | {rate / copy:.2f} | {verdict('copy', rate / copy)} |")
    print("\n| GEMM or step | TFLOP/s | ÷ GEMM peak |\n|---|---|---|")
    for compute in ("fp32", "bf16"):
        peak = rates.get(f"gemm/peak/{compute}")
        if not peak:
            continue
        print(f"| GEMM peak {compute} (8192³) | {peak * 1e-12:.1f} | 1.00 |")
        for name, rate in sorted(rates.items()):
            if name.startswith(("matmul/", "step/")) and name.endswith("/" + compute):
                print(f"| {name} | {rate * 1e-12:.2f} | {rate / peak:.2f} |")
    none = times.get("probes/medium/none")
    if none:
        print("\n| probes on the medium step | ms | ÷ no probe | goal | |\n|---|---|---|---|---|")
        for probe in ("none", "host", "cupti_activity", "range_profiler"):
            seconds = times.get(f"probes/medium/{probe}")
            if seconds is None:
                continue
            kind = f"probe/{probe}"
            goal = verdict(kind, seconds / none) if kind in GOALS else "- | -"
            print(f"| {probe} | {seconds * 1e3:.2f} | {seconds / none:.3f} | {goal} |")


def pytorch_section(out):
    rows = load_json(os.path.join(out, "pytorch.json"))
    if not rows:
        return
    print("\n## memfront ÷ PyTorch eager (`bench/pytorch_step.py --memfront`)\n")
    print("| shape | compute | PyTorch ms | memfront ms | time ratio | goal | | PyTorch MiB | memfront MiB "
          "| memory ratio | goal | |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "time_ratio" not in row:
            print(f"| {row['shape']} | {row['compute']} | {row['pytorch_step_s'] * 1e3:.2f} | - | - | - | - "
                  f"| {row['pytorch_peak_bytes'] / 2**20:.1f} | - | - | - | - |")
            continue
        print(f"| {row['shape']} | {row['compute']} | {row['pytorch_step_s'] * 1e3:.2f} "
              f"| {row['memfront_step_s'] * 1e3:.2f} | {row['time_ratio']:.2f} "
              f"| {verdict('time_vs_pytorch', row['time_ratio'])} "
              f"| {row['pytorch_peak_bytes'] / 2**20:.1f} | {row['memfront_peak_bytes'] / 2**20:.1f} "
              f"| {row['memory_ratio']:.2f} | {verdict('memory_vs_pytorch', row['memory_ratio'])} |")


def without(config, *keys):
    return {k: v for k, v in config.items() if k not in keys}


def sweep_section(out):
    lines = load_jsonl(os.path.join(out, "gpu-quickstart.jsonl"))
    trials = [line for line in lines if line.get("kind") == "trial"]
    if not trials:
        return
    statuses = {}
    for trial in trials:
        statuses[trial["status"]] = statuses.get(trial["status"], 0) + 1
    header = lines[0] if lines and lines[0].get("kind") == "header" else {}
    machine = header.get("machine", {})
    print(f"\n## The gpu-quickstart sweep\n\n{len(trials)} trials on {machine.get('gpu', '?')} "
          f"(driver {machine.get('driver', '?')}, CUDA {machine.get('cuda', '?')}): "
          + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
    failed = [t for t in trials if t["status"] != "ok"]
    for trial in failed[:5]:
        print(f"\n- `{trial['id']}` {trial['status']}: {trial.get('error', '')[:300]}")

    print("\nMemory cross-checks, rank 0 of each ok trial (bytes):\n")
    print("| trial | arena peak | pool used high | ÷ arena | goal | | CUPTI MEMORY2 peak | ÷ arena | goal | "
          "| driver used (context included) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for trial in trials:
        if trial["status"] != "ok":
            continue
        rank = trial["metrics"]["ranks"][0]
        arena = rank["peak_bytes"]["total"]
        gpu = rank.get("gpu") or {}
        pool = gpu.get("pool_used_high_bytes")
        cupti = (gpu.get("cupti") or {}).get("memory2_peak_bytes")
        cells = [f"`{trial['id']}`", str(arena)]
        for value in (pool, cupti):
            if value and arena:
                cells += [str(value), f"{value / arena:.4f}", verdict("memory_agreement", value / arena)]
            else:
                cells += ["-", "-", "- | -"]
        cells.append(str(gpu.get("device_used_bytes", "-")))
        print("| " + " | ".join(cells) + " |")

    cpu = load_json(os.path.join(out, "cpu-reference.json"))
    if not cpu:
        return
    cpu_config = without(cpu["config"], "backend")
    match = [t for t in trials if t["status"] == "ok" and without(t["config"], "backend") == cpu_config]
    if not match:
        print("\n_No GPU trial has the CPU reference's config; loss curves not compared._")
        return
    gpu_curve = match[0]["metrics"]["loss"]["curve"]
    cpu_curve = cpu["metrics"]["loss"]["curve"]
    worst = max(abs(g - c) / abs(c) for g, c in zip(gpu_curve, cpu_curve))
    print(f"\nLoss curve, reference config (`{match[0]['id']}`), GPU vs CPU over {len(cpu_curve)} steps: "
          f"largest relative difference {worst:.2e} (the GPU step test allows 5e-3); final held-out loss "
          f"GPU {match[0]['metrics']['loss']['final']:.6f}, CPU {cpu['metrics']['loss']['final']:.6f}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="gpu-check.sh's output folder")
    args = parser.parse_args()
    print("# memfront GPU run: summary")
    try:
        with open(os.path.join(args.out, "env.txt")) as f:
            print("\n```\n" + "".join(f.readlines()[:8]) + "```")
    except OSError:
        pass
    ctest_section(args.out)
    bench_section(args.out)
    pytorch_section(args.out)
    sweep_section(args.out)


if __name__ == "__main__":
    main()
