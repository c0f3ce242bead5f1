#!/usr/bin/env bash
# Installs what is missing, builds everything (Release, Ninja, 2 jobs, warnings
# as errors) and runs the whole test suite through CTest; then builds the unit
# tests alone under AddressSanitizer and UBSan and runs them again. This is the
# README's test command and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset ci
cmake --build --preset ci
ctest --preset ci

# The asan presets build only the target unit_tests and run the tests labelled
# unit (tests/CMakeLists.txt): no MPI launch, GPU, GUI or cluster.
cmake --preset asan
cmake --build --preset asan
ctest --preset asan

# The parsers of outside input under libFuzzer, from their seed corpora (scripts/fuzz.sh).
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash scripts/fuzz.sh
