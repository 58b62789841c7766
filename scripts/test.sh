#!/usr/bin/env bash
# The whole test suite: install dependencies, check formatting, build and run
# every test in a release build, then again under ASan + UBSan.  A test
# that runs past 900 s fails instead of holding up the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)

bash scripts/format.sh --check

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DUD_WERROR=ON \
  -DUD_FAULT_INJECTION=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --no-tests=error --timeout 900 -j"$jobs"

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DUD_SANITIZE=ON \
  -DUD_FAULT_INJECTION=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure --no-tests=error --timeout 900 -j"$jobs"

# Fuzzing: libFuzzer harnesses (tests/fuzz, clang, ASan + UBSan) for a short
# bounded time on their corpus and regressions; a crash fails.  Six harnesses
# at 20 s each and four narrower ones at 12 s: under 3 minutes after the
# build.  Longer local runs that grow the corpus: scripts/fuzz.sh [SECONDS].
bash scripts/fuzz.sh --ci "${UD_FUZZ_SECONDS:-20}" mpframe rpc http fields recover apply
bash scripts/fuzz.sh --ci "${UD_FUZZ_SMALL_SECONDS:-12}" keyfile pgoutput pwpack import
