#!/usr/bin/env bash
# Installs what is missing, builds everything (Release, Ninja, 2 jobs) and runs
# the whole test suite through CTest. This is the README's test command and
# exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default
cmake --build --preset default
ctest --preset default -j2
