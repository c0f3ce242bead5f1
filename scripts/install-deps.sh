#!/usr/bin/env bash
# Installs every Debian 12 package memfront builds, tests or benchmarks with,
# and the Python environment (PyTorch, DeepSpeed) in which the frameworks tests
# (CTest label frameworks) run the exports.
# Idempotent: asks apt only for what is missing and reuses an environment that
# imports, so a second run is a no-op.
# Run as root on a fresh machine. The CUDA toolkit is not a Debian package and is
# optional: when nvcc is on the machine the CUDA parts are built, otherwise skipped.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev            # CPU GEMM (cblas_sgemm)
  libopenmpi-dev openmpi-bin # ranks and their messages
  nlohmann-json3-dev         # config, study and results JSON
  libvalijson-dev            # tests: records and headers against results/schema.json
  libutfcpp-dev              # UTF-8 of the exports' comments
  libcli11-dev               # command lines
  libgtest-dev libgmock-dev  # tests
  libbenchmark-dev           # bench/
  qt6-base-dev qt6-svg-dev   # memfront-viewer (Widgets, Concurrent, Test, PrintSupport, Svg)
  libqcustomplot-dev         # its plots (the Qt 6 build: libQCustomPlotQt6)
  libgl-dev                  # Qt6Gui's CMake package asks for OpenGL headers
  slurm-wlm                  # Slurm sweeps: the tests run a local cluster (scripts/slurm-local.sh)
  locales                    # de_DE.UTF-8, below
  clang libclang-rt-14-dev   # the fuzz preset: clang with libFuzzer and the sanitizer runtimes (tests/fuzz/)
  python3-venv               # the frameworks environment, below
)

# The tests run the number parsers under a comma-decimal locale; Debian
# generates only the locales /etc/locale.gen names.
comma_locale=de_DE.UTF-8
ensure_comma_locale() {
  if locale -a 2>/dev/null | grep -qix 'de_DE.utf-\?8'; then return 0; fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: locale $comma_locale missing; run as root to generate it (its tests skip until then)" >&2
    return 0
  fi
  echo "install-deps: generating locale $comma_locale"
  sed -i "s/^# *\($comma_locale UTF-8\)/\1/" /etc/locale.gen
  locale-gen >/dev/null
}

# PyTorch and DeepSpeed from PyPI, in one environment outside the checkout
# that every checkout and CI run shares (tests/frameworks/ finds it here, or at
# $MEMFRONT_FRAMEWORKS_VENV). PyPI's torch brings its CUDA libraries: about
# 6 GB and several minutes the first time; later runs find it and go on.
# DeepSpeed's setup imports torch, so it is built against the one installed.
frameworks_venv=${MEMFRONT_FRAMEWORKS_VENV:-$HOME/.cache/memfront/frameworks-venv}
ensure_frameworks_venv() {
  if "$frameworks_venv/bin/python" -c 'import torch, deepspeed, numpy' >/dev/null 2>&1; then
    echo "install-deps: frameworks environment present ($frameworks_venv)"
    return 0
  fi
  echo "install-deps: creating the frameworks environment $frameworks_venv (PyTorch, DeepSpeed)"
  python3 -m venv "$frameworks_venv"
  "$frameworks_venv/bin/pip" install -q torch numpy
  "$frameworks_venv/bin/pip" install -q --no-build-isolation deepspeed
  # DeepSpeed compiles the CPU ops the tests use (shared-memory collectives,
  # Adam) on first use, into ~/.cache/torch_extensions: here, once, rather
  # than inside the first test run's time limit.
  "$frameworks_venv/bin/python" -c 'from deepspeed.accelerator import get_accelerator
for name in ("ShareMemCommBuilder", "FusedAdamBuilder"): get_accelerator().create_op_builder(name).load()'
}

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
elif [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
ensure_comma_locale
ensure_frameworks_venv
