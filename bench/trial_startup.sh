#!/usr/bin/env bash
# Where the wall time of a one-rank trial goes, by stage, from strace
# timestamps of system calls that mark each stage's end:
#   libs         exec to MPI_Init's first read of its MCA parameter file
#   mpi_init     to the open of the trial config (MPI_Init done, command line parsed)
#   placeholder  to the claim of a core (the unfinished record written)
#   setup        to the first read of /proc/loadavg (model built, parameters made)
#   steps        to the second read of /proc/loadavg (the warmup and timed steps)
#   record       to the write of the final record (held-out loss, metrics, record)
#   finalize     to exit (MPI_Finalize)
# Prints the median of each over RUNS runs, in milliseconds. strace slows system
# calls a little; on a busy machine every stage waits for a core too, so
# compare binaries in the same invocation or on a quiet machine.
#
#   bash bench/trial_startup.sh ./build/kernels/memfront-trial config.json [RUNS]
#
# The config must be a one-rank trial (world 1), which the local launcher starts
# without mpirun.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 MEMFRONT_TRIAL CONFIG [RUNS]" >&2
  exit 2
fi
trial=$1 config=$2 runs=${3:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for run in $(seq "$runs"); do
  strace -ttt -e trace=execve,openat,exit_group -o "$work/trace" \
    "$trial" --config "$config" --out "$work/record.json" --quiet
  awk -v config="\"$config\"" '
    /execve/ && !exec { exec = $1 }
    /openmpi-mca-params.conf/ && !mpi { mpi = $1 }
    /openat/ && index($0, config) && !conf { conf = $1 }
    /record.json.tmp/ { if (!placeholder) placeholder = $1; else record = $1 }
    /memfront-cpu-locks/ && !bind { bind = $1 }
    /loadavg/ { if (!load1) load1 = $1; else load2 = $1 }
    /exit_group/ { end = $1 }
    END {
      printf "libs %.1f mpi_init %.1f placeholder %.1f setup %.1f steps %.1f record %.1f finalize %.1f total %.1f\n",
        (mpi - exec) * 1e3, (conf - mpi) * 1e3, (bind - conf) * 1e3, (load1 - bind) * 1e3,
        (load2 - load1) * 1e3, (record - load2) * 1e3, (end - record) * 1e3, (end - exec) * 1e3
    }' "$work/trace"
done | python3 -c '
import statistics, sys
rows = [line.split() for line in sys.stdin]
names = rows[0][0::2]
print("median ms over %d runs:" % len(rows),
      " ".join("%s %.0f" % (name, statistics.median(float(r[2 * i + 1]) for r in rows)) for i, name in enumerate(names)))'
