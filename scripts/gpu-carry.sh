# The carried folder's conventions, sourced by gpu-prepare.sh (here) and
# gpu-check.sh (on the GPU machine), so that both sides agree on them.

# The prepared folder, and the archive of it that travels (the device tool's
# carry names its folder), both relative to the checkout's root.
gpu_stage=.gpu-stage
gpu_archive_dir=.gpu-carry
gpu_archive=$gpu_archive_dir/stage.tar.gz

# Libraries the GPU machine's own system provides and a carried program must
# not bring: glibc's, and the compiler runtime, which that machine (a newer
# distribution, with PyTorch) has in a newer, backward-compatible version.
gpu_carry_is_base_library() {
  case "$1" in
    ld-linux-x86-64.so.2 | linux-vdso.so.1 | libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | \
      librt.so.1 | libutil.so.1 | libresolv.so.2 | libanl.so.1 | libstdc++.so.6 | libgcc_s.so.1 | \
      libcuda.so.1 | libnvidia-*) return 0 ;;
    *) return 1 ;;
  esac
}

# The folders that hold the CUDA libraries memfront's programs load, one per
# line, found by file name: the toolkit's folders first, then the NVIDIA
# wheels beside PyTorch (where the GPU machine may keep NCCL).
gpu_carry_cuda_dirs() {
  local wheels=""
  if command -v python3 >/dev/null; then
    wheels=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
  fi
  local name dir found
  for name in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcupti.so.13 libnccl.so.2; do
    found=""
    for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/extras/CUPTI/lib64 \
      /usr/local/cuda/targets/x86_64-linux/lib $(for w in $wheels; do echo "$w"/nvidia/*/lib; done); do
      if [[ -e $dir/$name ]]; then
        found=$(cd "$dir" && pwd -P)
        break
      fi
    done
    [[ -n $found ]] && echo "$found"
  done | awk '!seen[$0]++'
}

# Exports what a carried program needs: the carried libraries first, then the
# CUDA folders given (newline-separated), and Open MPI relocated into the
# carried folder with only the shared-memory transports a one-machine run uses.
gpu_carry_environment() {
  local carry=$1 cuda_dirs=$2
  local mpi_prefix=$carry/mpi/usr
  local mpi_libdir=$mpi_prefix/lib/x86_64-linux-gnu/openmpi/lib
  export LD_LIBRARY_PATH="$carry/lib:$mpi_libdir${cuda_dirs:+:$(paste -sd: <<<"$cuda_dirs")}"
  export PATH="$mpi_prefix/bin:$PATH"
  export OPAL_PREFIX=$mpi_prefix
  export OPAL_LIBDIR=$mpi_libdir
  export OPAL_PKGLIBDIR=$mpi_libdir/openmpi3
  export OPAL_DATADIR=$mpi_prefix/share
  export OPAL_PKGDATADIR=$mpi_prefix/share/openmpi
  export OPAL_SYSCONFDIR=$carry/mpi/etc/openmpi
  export PMIX_INSTALL_PREFIX=$mpi_prefix/lib/x86_64-linux-gnu/pmix2
  export PMIX_MCA_mca_base_component_path=$mpi_prefix/lib/x86_64-linux-gnu/pmix2/lib/pmix
  # hwloc's optional plugins (PCI, OpenCL, X11) would pull in libraries that
  # do not travel; hwloc sees the cores and caches without them.
  export HWLOC_PLUGINS_PATH=$carry/mpi/no-hwloc-plugins
  export OMPI_MCA_pml=ob1
  export OMPI_MCA_btl=self,vader
}

# The ELF files (programs and shared libraries) under the given folders.
gpu_carry_elf_files() {
  find "$@" -type f \( -perm -u+x -o -name '*.so*' \) | while read -r file; do
    [[ $(head -c 4 "$file" | tail -c 3) == ELF ]] && echo "$file"
  done
}
