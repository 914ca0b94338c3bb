#!/usr/bin/env bash
# Builds the libFuzzer targets (clang 14, ASan+UBSan) in their own tree and runs each for a
# bounded time from the committed seed corpus in tests/fuzz/corpus/<target>/.
#
# Usage: deploy/fuzz.sh [target...]      (default: every target)
#   env CHARTFLOW_FUZZ_SECONDS    run time per target (default 45)
#   env CHARTFLOW_FUZZ_BUILD_DIR  build tree (default build-fuzz)
#   env CHARTFLOW_FUZZ_JOBS       build parallelism (default 2)
# Exits non-zero when a target crashes, leaks memory past its limit or hangs; the input that did
# it is kept as <build dir>/artifacts/<target>-crash-... (replay: build-fuzz/fuzz_<target> FILE).
# New inputs the fuzzer finds go to a scratch corpus, so the committed seeds never change here.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${CHARTFLOW_FUZZ_SECONDS:-45}"
build="${CHARTFLOW_FUZZ_BUILD_DIR:-build-fuzz}"
jobs="${CHARTFLOW_FUZZ_JOBS:-2}"
targets=("$@")
((${#targets[@]} > 0)) || targets=(workflow_config chart_intake http_request s3_sigv4 drop_folder)

for tool in clang clang++; do
  command -v "$tool" >/dev/null || {
    echo "fuzz.sh: $tool not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
  }
done

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHARTFLOW_FUZZ=ON \
  >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}"

mkdir -p "$build/artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for target in "${targets[@]}"; do
  scratch="$(mktemp -d)"
  log="$build/fuzz_$target.log"
  echo "fuzz.sh: $target for ${seconds}s"
  rc=0
  "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
    "$scratch" "tests/fuzz/corpus/$target" >"$log" 2>&1 || rc=$?
  rm -rf "$scratch"
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)"
  if ((rc != 0)); then
    echo "fuzz.sh: $target FAILED (exit $rc); see $log and $build/artifacts/" >&2
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 >&2 || true
    status=1
  else
    echo "fuzz.sh: $target ok, ${runs:-?} executions, no crash"
  fi
done
exit "$status"
