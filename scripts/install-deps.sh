#!/usr/bin/env bash
# Installs every Debian 12 package memfront builds, tests or benchmarks with.
# Idempotent: asks apt only for what is missing, so a second run is a no-op.
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

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  ensure_comma_locale
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
ensure_comma_locale
