#!/usr/bin/env bash
# Installs what is missing, builds memfront-trial, and runs the small example
# configs one after another, so that the measured peaks by category can be
# compared across the knobs (checkpointing, int8 activations, Top-K attention).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default
cmake --build --preset default --target memfront-trial

out=build/quickstart
mkdir -p "$out"
for name in small small-checkpoint small-int8 small-topk; do
  echo "== examples/$name.json"
  ./build/kernels/memfront-trial --config "examples/$name.json" --out "$out/$name.record.json"
  echo
done
echo "Trial records (JSON) are in $out/."
