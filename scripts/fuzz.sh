#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, ASan + UBSan) in build-fuzz and run
# each for SECONDS (default 300) on its checked-in corpus and regressions.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
# Without --ci, new coverage found is merged (minimised) back into
# tests/fuzz/corpus/<harness>/.  --ci: no merge, the corpus is left alone
# (scripts/test.sh runs `scripts/fuzz.sh --ci 20`).  A crash fails the
# script; the input is saved as build-fuzz/artifacts/<harness>/crash-*:
# fix the bug, then keep the input under tests/fuzz/regressions/<harness>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ci=0
if [ "${1:-}" = "--ci" ]; then ci=1; shift; fi
secs=${1:-300}
[ $# -gt 0 ] && shift
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(mpframe rpc http fields recover apply
	keyfile pgoutput pwpack import)

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DUD_FUZZ=ON \
	-DUD_FAULT_INJECTION=ON >/dev/null
cmake --build build-fuzz -j2 --target fuzz_all >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for h in "${harnesses[@]}"; do
  bin=build-fuzz/tests/fuzz/fuzz_$h
  corpus=tests/fuzz/corpus/$h
  regress=tests/fuzz/regressions/$h
  work=build-fuzz/work/$h
  art=build-fuzz/artifacts/$h
  rm -rf "$work"
  mkdir -p "$work" "$art" "$corpus"
  dirs=("$corpus")
  [ -d "$regress" ] && dirs+=("$regress")
  log=build-fuzz/fuzz-$h.log
  # New units go to $work; the checked-in corpus is only read here.
  if ! "$bin" -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=512 \
      -timeout=10 -max_len=8192 -dict=tests/fuzz/fuzz.dict \
      -artifact_prefix="$art/" -print_final_stats=1 \
      "$work" "${dirs[@]}" >"$log" 2>&1; then
    echo "fuzz: $h FAILED (input in $art, log $log)"
    grep -E "ERROR|property broken|SUMMARY" "$log" | head -5 || true
    status=1
    continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  echo "fuzz: $h ok: ${secs}s, $execs runs, $rate/s, $cov"
  if [ $ci = 0 ]; then
    "$bin" -merge=1 -dict=tests/fuzz/fuzz.dict -max_len=8192 "$corpus" "$work" \
      >"build-fuzz/merge-$h.log" 2>&1 || echo "fuzz: $h merge failed"
  fi
done
exit $status
