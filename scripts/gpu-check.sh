#!/usr/bin/env bash
# The GPU run, on a lent GPU machine, in one call of at most 8 minutes: what
# scripts/gpu-prepare.sh carried there (.gpu-carry/stage.tar.gz) is unpacked
# into .gpu-stage/ and set up, then
#   1. ldd shows every carried program's libraries found            -> env.txt
#   2. ctest -L gpu: CUDA ops vs CPU, GPU vs CPU loss curves, arena vs
#      pool vs driver, NCCL, CUPTI                                  -> ctest.log
#   3. bench_gpu, then bench/pytorch_step.py --memfront on its JSON -> bench_gpu.json, pytorch.json
#   4. the examples/gpu-quickstart.json sweep with traces, and one CPU trial of
#      its reference config for the GPU/CPU loss comparison       -> gpu-quickstart.jsonl, 2 traces
#   5. a summary with every ratio and its goal                       -> summary.md (also printed)
# Every step has its own time limit (450 s together), and a failed step does not stop the
# next: what ran comes back in $OUT (8 files at most) either way.
#
#   (device tool) run  command: bash scripts/gpu-check.sh   carry: [".gpu-carry"]   timeout_s: 540
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-carry.sh

root=$(pwd -P)
carry=$root/$gpu_stage
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
started=$SECONDS
log() { echo "gpu-check [$((SECONDS - started)) s]: $*" | tee -a "$out/env.txt"; }
[[ -f $gpu_archive ]] || { echo "gpu-check: no $gpu_archive here: run scripts/gpu-prepare.sh, carry $gpu_archive_dir" >&2; exit 1; }
rm -rf "$carry" && mkdir -p "$carry" && tar -C "$carry" -xzf "$gpu_archive" || exit 1

# CTest's files name the absolute paths of the checkout they were made in
# (its build/ and, for the MPI test, Debian's /usr/bin/mpiexec): make both
# resolve here.
prepared_root=$(cat "$carry/source-root")
if [[ $prepared_root != "$root" ]]; then
  if [[ -e $prepared_root || -L $prepared_root ]]; then
    [[ $(cd "$prepared_root" && pwd -P) == "$root" ]] || {
      echo "gpu-check: $prepared_root (where the build was prepared) exists here and is another folder" >&2
      exit 1
    }
  else
    mkdir -p "$(dirname "$prepared_root")" && ln -s "$root" "$prepared_root"
  fi
fi
# build/ becomes the carried one; a real build folder (this is a developer's
# checkout, not the GPU machine's copy) is never touched.
[[ -L build || ! -e build ]] || {
  echo "gpu-check: build/ is a real build folder here; run gpu-check.sh in the GPU machine's copy" >&2
  exit 1
}
ln -sfn "$gpu_stage/build" build
cuda_dirs=$(gpu_carry_cuda_dirs)
gpu_carry_environment "$carry" "$cuda_dirs"
[[ -e /usr/bin/mpiexec ]] || ln -s "$carry/mpi/usr/bin/orterun" /usr/bin/mpiexec

# 1. The machine, and every carried program's libraries.
{
  echo "# gpu-check on $(hostname), $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  nvcc --version 2>&1 | tail -1
  echo "CUDA library folders: $(echo $cuda_dirs)"
  python3 -c 'import torch; print("PyTorch", torch.__version__, torch.version.cuda)' 2>&1
} >>"$out/env.txt"
missing=0
while read -r program; do
  if ldd "$program" 2>&1 | grep -q 'not found'; then
    log "ldd $program: $(ldd "$program" 2>&1 | grep 'not found' | tr -s ' \t' ' ' | paste -sd';')"
    missing=1
  fi
done < <(gpu_carry_elf_files build/ "$carry/lib" "$carry/mpi")
((missing == 0)) && log "ldd: every carried program finds its libraries"

# 2. The GPU tests.
log "ctest -L gpu"
timeout 150 ctest --test-dir build -L gpu --output-on-failure --timeout 120 >"$out/ctest.log" 2>&1
log "ctest exit $? ($(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -1))"

# 3. The kernels and steps against the device's copy and GEMM peak, then PyTorch on the same shapes.
log "bench_gpu"
timeout 100 build/bench/bench_gpu --benchmark_min_time=0.2 --benchmark_out="$out/bench_gpu.json" --benchmark_out_format=json \
  >"$out/bench_gpu.txt" 2>&1
log "bench_gpu exit $?"
log "pytorch_step.py --memfront"
# PyTorch brings its own libraries: none of the carried ones.
env -u LD_LIBRARY_PATH PYTHONUNBUFFERED=1 timeout 60 python3 bench/pytorch_step.py \
  --memfront "$out/bench_gpu.json" --json "$out/pytorch.json" >>"$out/bench_gpu.txt" 2>&1
log "pytorch_step.py exit $?"

# 4. The GPU quickstart sweep with traces, and its reference config once on the CPU.
rm -rf results/gpu-quickstart.jsonl results/gpu-quickstart.jsonl.trials
log "memfront sweep examples/gpu-quickstart.json"
timeout 120 build/tuner/memfront sweep examples/gpu-quickstart.json >>"$out/env.txt" 2>&1
log "sweep exit $?"
cp results/gpu-quickstart.jsonl "$out/" 2>/dev/null
traces=(results/gpu-quickstart.jsonl.trials/*.trace.json)
[[ -e ${traces[0]} ]] && cp "${traces[0]}" "$out/trace-first.json"
((${#traces[@]} > 1)) && cp "${traces[-1]}" "$out/trace-last.json"
python3 - examples/gpu-quickstart.json "$out/cpu-reference-config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))["base"]
config["backend"] = "cpu"
json.dump(config, open(sys.argv[2], "w"))
EOF
timeout 20 build/kernels/memfront-trial --config "$out/cpu-reference-config.json" --steps 16 --warmup 2 \
  --out "$out/cpu-reference.json" --quiet >>"$out/env.txt" 2>&1
log "CPU reference trial exit $?"

# 5. The summary, then only the files that come back (8 at most).
python3 scripts/gpu_summary.py --out "$out" >"$out/summary.md" 2>>"$out/env.txt"
cat "$out/bench_gpu.txt" >>"$out/ctest.log"
rm -f "$out/bench_gpu.txt" "$out/cpu-reference-config.json" "$out/cpu-reference.json"
log "done"
cat "$out/summary.md"
