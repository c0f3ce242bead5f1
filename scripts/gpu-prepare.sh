#!/usr/bin/env bash
# Prepares, on this machine, everything scripts/gpu-check.sh needs on a lent GPU
# machine. That machine has the CUDA toolkit, CMake and Python with PyTorch, but
# no Debian -dev packages and no package registry, and its time is short (15
# minutes a session, start-up included). So nothing is built there: the default
# build's programs travel with the non-CUDA shared libraries they load.
#
#   bash scripts/gpu-prepare.sh        # here: build, collect, check -> .gpu-stage/, .gpu-carry/
#   bash scripts/gpu-prepare.sh --rehearse   # and run gpu-check.sh here as the GPU machine will
#   (device tool) run  command: bash scripts/gpu-check.sh   carry: [".gpu-carry"]   timeout_s: 540
#
# .gpu-stage/ (ignored by git) holds, and .gpu-carry/stage.tar.gz (ignored,
# gzip: the folder itself is over the device tool's 64 MiB) carries:
#   build/        the programs gpu-check.sh runs (the GPU tests, bench_gpu,
#                 memfront, memfront-trial) and CTest's files, at their places
#                 in build/; the CTest files name this checkout's absolute path
#   lib/          every shared library they load that is neither glibc's nor
#                 CUDA's (OpenBLAS, gfortran, Open MPI, PMIx, libevent, hwloc, ...)
#   mpi/usr/...   Open MPI's runtime (mpirun, its components, help texts and
#                 settings) in Debian's layout, relocated there by OPAL_PREFIX
#   source-root   this checkout's absolute path
# The CUDA libraries (cudart, cuBLAS, CUPTI, NCCL) are not carried: NCCL and
# cuBLAS alone are over 700 MiB, and the GPU machine has its own CUDA 13.
#
# The checks at the end prove what can be proved without a GPU: the folder is
# under the device tool's 64 MiB, every program's libraries resolve with
# LD_LIBRARY_PATH holding only the carried folder and the CUDA libraries, and a
# one-rank and a two-rank trial run through the carried mpirun with Debian's
# Open MPI and PMIx folders hidden, loading nothing from outside the carried
# folder, CUDA and glibc.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-carry.sh

root=$(pwd -P)
carry=$root/$gpu_stage
build=$root/build

die() { echo "gpu-prepare: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is needed to read CTest's test list"

# 1. The default build, with its CUDA parts.
bash scripts/install-deps.sh
configure=$(cmake --preset default)
[[ $configure == *"memfront: CUDA parts ON"* ]] ||
  die "the build has no CUDA parts (nvcc, cuBLAS, CUPTI or NCCL not found): see README.md, 'The GPU path'"
cmake --build --preset default

# 2. The programs: every executable the gpu-labelled tests run, and those the
#    benchmark and the GPU sweep run.
rm -rf "$carry"
mkdir -p "$carry/build" "$carry/lib" "$carry/mpi"
printf '%s\n' "$root" >"$carry/source-root"
mapfile -t programs < <(
  ctest --test-dir "$build" -L gpu --show-only=json-v1 | python3 -c '
import json, os, sys
build = sys.argv[1]
for test in json.load(sys.stdin)["tests"]:
    for word in test.get("command", []):
        if word.startswith(build + "/") and os.access(word, os.X_OK):
            print(word)
' "$build" | sort -u)
((${#programs[@]} > 0)) || die "CTest lists no gpu-labelled test programs in $build"
programs+=("$build/bench/bench_gpu" "$build/tuner/memfront" "$build/kernels/memfront-trial")
for program in "${programs[@]}"; do
  [[ -x $program ]] || die "missing program $program (did the build finish?)"
  relative=${program#"$build"/}
  mkdir -p "$carry/build/$(dirname "$relative")"
  cp "$program" "$carry/build/$relative"
done
# CTest's own files: every folder's CTestTestfile.cmake and the test lists
# gtest_discover_tests wrote beside them.
(cd "$build" && find . \( -name CTestTestfile.cmake -o -name '*_include.cmake' -o -name '*_tests.cmake' \) \
  -exec cp --parents {} "$carry/build/" \;)

# 3. Open MPI's runtime in Debian's layout, without the components for network
#    hardware a one-GPU machine has none of (InfiniBand verbs, UCX, libfabric,
#    PSM): each would pull in megabytes of libraries only to stay unused.
mpi_lib=usr/lib/x86_64-linux-gnu
copy_tree() {  # copy_tree SOURCE DEST: files, links followed
  mkdir -p "$2"
  cp -rL "$1/." "$2/"
}
mkdir -p "$carry/mpi/usr/bin"
for tool in orterun orted ompi_info; do cp /usr/bin/$tool "$carry/mpi/usr/bin/"; done
ln -s orterun "$carry/mpi/usr/bin/mpirun"
ln -s orterun "$carry/mpi/usr/bin/mpiexec"
copy_tree /$mpi_lib/openmpi "$carry/mpi/$mpi_lib/openmpi"
copy_tree /$mpi_lib/pmix2 "$carry/mpi/$mpi_lib/pmix2"
copy_tree /usr/share/openmpi "$carry/mpi/usr/share/openmpi"
[[ -d /usr/share/pmix ]] && copy_tree /usr/share/pmix "$carry/mpi/usr/share/pmix"
copy_tree /etc/openmpi "$carry/mpi/etc/openmpi"
# Their shared libraries are found by ldd below and kept once, by soname, in lib/.
rm -rf "$carry/mpi/$mpi_lib/openmpi/include" "$carry/mpi/$mpi_lib/pmix2/include"
find "$carry/mpi/$mpi_lib/openmpi/lib" "$carry/mpi/$mpi_lib/pmix2/lib" -maxdepth 1 -name 'lib*.so*' -delete
find "$carry/mpi" \( -name '*.a' -o -name '*.la' -o -name '*.pc' \) -delete
find "$carry/mpi" -name '*.so' \( -name '*ucx*' -o -name '*ofi*' -o -name '*openib*' -o -name '*verbs*' \
  -o -name '*psm*' -o -name '*usnic*' -o -name '*portals*' -o -name '*_java*' \) -delete

# 4. The shared libraries all of these load, found by ldd: everything that is
#    neither glibc's (gpu_carry_is_base_library) nor CUDA's.
mapfile -t objects < <(gpu_carry_elf_files "$carry/build" "$carry/mpi")
for object in "${objects[@]}"; do
  ldd "$object" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  gpu_carry_is_base_library "$name" && continue
  [[ $path == /usr/local/cuda* ]] && continue
  [[ $path == "$carry"/* ]] && continue
  cp -L "$path" "$carry/lib/$name"
done

# 5. The archive that travels, and the checks.
rm -rf "${root:?}/$gpu_archive_dir" && mkdir -p "$root/$gpu_archive_dir"
tar -C "$carry" -czf "$root/$gpu_archive" .
size=$(stat -c %s "$root/$gpu_archive")
tree_size=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
echo "gpu-prepare: $gpu_stage holds ${#programs[@]} programs, $(ls "$carry/lib" | wc -l) libraries," \
  "$(($(du -sb "$carry" | cut -f1) >> 20)) MiB; $gpu_archive is $((size >> 20)) MiB, the tree $((tree_size >> 20)) MiB"
((size + tree_size < 60 * 1024 * 1024)) || die "$gpu_archive and the tree are over the device tool's 64 MiB"

gpu_carry_environment "$carry" "$(gpu_carry_cuda_dirs)"
bad=0
for object in "${objects[@]}"; do
  while read -r name arrow path _; do
    if [[ $path == "not" ]]; then
      echo "gpu-prepare: $object: $name not found" >&2
      bad=1
    elif [[ $path == /* && $path != "$carry"/* && $path != /usr/local/cuda* ]] &&
      ! gpu_carry_is_base_library "$name"; then
      echo "gpu-prepare: $object: $name resolves outside the carried folder ($path)" >&2
      bad=1
    fi
  done < <(ldd "$object" 2>/dev/null | awk '$2 == "=>"')
done
((bad == 0)) || die "the carried programs need libraries that would not travel"

# Trials through the carried mpirun, with Debian's Open MPI and PMIx hidden
# (a private mount namespace) and every object the loader maps logged.
check_dir=$(mktemp -d)
trap 'rm -rf "$check_dir"' EXIT
export MEMFRONT_TRIAL=$carry/build/kernels/memfront-trial
for ranks in 1 2; do
  printf '%s\n' '{"model": {"vocab": 64, "seq": 16, "width": 32, "heads": 2, "layers": 2},' \
    ' "batch": {"micro": 2, "accum": 1}, "world": '"$ranks"', "train": {"steps": 2, "warmup": 1}}' \
    >"$check_dir/config-$ranks.json"
done
hide=(/$mpi_lib/openmpi /$mpi_lib/pmix2 /$mpi_lib/hwloc /usr/share/openmpi /etc/openmpi)
[[ -d /usr/share/pmix ]] && hide+=(/usr/share/pmix)
for ranks in 1 2; do
  # In the namespace: $1 the check folder, $2 the ranks, then the folders to hide.
  unshare -m bash -c '
    for dir in "${@:3}"; do mount -t tmpfs none "$dir"; done
    LD_DEBUG=libs LD_DEBUG_OUTPUT="$1/ld" mpirun -np "$2" --oversubscribe --allow-run-as-root \
      "$MEMFRONT_TRIAL" --config "$1/config-$2.json" --out "$1/record-$2.json" >"$1/trial-$2.log" 2>&1' \
    - "$check_dir" "$ranks" "${hide[@]}" ||
    die "a $ranks-rank trial through the carried mpirun failed: $(tail -3 "$check_dir/trial-$ranks.log")"
  [[ -s $check_dir/record-$ranks.json ]] || die "the $ranks-rank trial wrote no record"
done
outside=$(sed -n 's/.*calling init: \(\/.*\)$/\1/p' "$check_dir"/ld.* | sort -u |
  while read -r path; do
    [[ $path == "$carry"/* || $path == /usr/local/cuda* ]] && continue
    gpu_carry_is_base_library "$(basename "$path")" && continue
    echo "$path"
  done)
grep -q "calling init: $carry/lib/libmpi.so" "$check_dir"/ld.* ||
  die "the loader's log of the trials does not show the carried libmpi loaded"
[[ -z $outside ]] || die "the trials loaded objects from outside the carried folder: $(echo $outside)"
echo "gpu-prepare: 1- and 2-rank trials ran through the carried mpirun with Debian's Open MPI hidden"
echo "gpu-prepare: ready. On the GPU machine (device tool): command 'bash scripts/gpu-check.sh', carry ['$gpu_archive_dir']"

# --rehearse: gpu-check.sh as the GPU machine will run it, here: in a copy of
# the tree at another path, with this checkout's folder and Debian's Open MPI
# hidden (a private mount namespace). The GPU steps skip or fail for want of
# a device; everything else runs, and the summary is printed.
if [[ ${1:-} == --rehearse ]]; then
  rehearsal=$(mktemp -d)
  trap 'rm -rf "$check_dir" "$rehearsal"' EXIT
  mkdir -p "$rehearsal/repo" "$rehearsal/out"
  git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$rehearsal/repo"
  cp -a "$root/$gpu_archive_dir" "$rehearsal/repo/"
  unshare -m bash -c '
    for dir in "${@:3}"; do mount -t tmpfs none "$dir"; done
    cd "$1/repo" && OUT="$1/out" bash scripts/gpu-check.sh' \
    - "$rehearsal" unused "$(dirname "$root")" "${hide[@]}"
  echo "gpu-prepare: rehearsal wrote: $(cd "$rehearsal/out" && ls | paste -sd' ') ($(ls "$rehearsal/out" | wc -l) files)"
fi
