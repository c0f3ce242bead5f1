#!/usr/bin/env bash
# The main job on its embedded default: installs what is missing, builds the
# tuner and the trial program, runs the quickstart study (24 configurations of
# sharding, checkpointing, activation precision and Top-K attention on 2 ranks,
# a few minutes on 2 cores), prints the Pareto front of peak memory, step time
# and loss, and exports the knee of the front as a DeepSpeed config.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default
cmake --build --preset default --target memfront memfront-trial memfront-calibrate

out=build/quickstart
mkdir -p "$out"
# --resume: a second run reuses what the first recorded instead of starting over.
./build/tuner/memfront sweep examples/quickstart.json --results "$out/quickstart.jsonl" --resume
echo
echo "== the knee of the front, exported for DeepSpeed (memfront export --pick knee --format deepspeed)"
./build/tuner/memfront export "$out/quickstart.jsonl" --pick knee --format deepspeed --out "$out/knee.deepspeed.json"
cat "$out/knee.deepspeed.json"
echo
echo "Results: $out/quickstart.jsonl (memfront pareto, memfront export, memfront status read it)."
