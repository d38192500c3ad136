#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer workspace (tests/fuzz) and runs every target (or those named
# as arguments) for FUZZ_SECONDS each, one after the other, niced and bounded by `timeout`.
# New inputs go to tests/fuzz/target/corpus/<target> (the checked-in seeds are read, not
# written); crashes to tests/fuzz/artifacts/<target>/. Prints a table of executions and coverage
# (libFuzzer's `cov`: edges, `ft`: features) and writes it to tests/fuzz/target/summary.md.
# Exit status 1 when a target crashed, hung or broke an invariant.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/tests/fuzz"
seconds="${FUZZ_SECONDS:-300}"
# libFuzzer needs the sanitizer-coverage instrumentation flags cargo-fuzz passes, some of
# which only nightly accepts; the stable toolchain takes them with RUSTC_BOOTSTRAP=1. No
# sanitizer (-s none): the code under test is safe Rust; debug assertions are on (-a).
export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir "$fuzz" -s none -a)

if [ "$#" -gt 0 ]; then targets=("$@"); else
  mapfile -t targets < <(ls "$fuzz/fuzz_targets" | sed 's/\.rs$//' | sort)
fi

nice cargo fuzz build "${flags[@]}"
logs="$fuzz/target/logs"
mkdir -p "$logs"
summary="$fuzz/target/summary.md"
{
  echo "| target | seconds | executions | exec/s | edges (cov) | features (ft) | corpus | result |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
} > "$summary"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$fuzz/target/corpus/$t" "$fuzz/artifacts/$t"
  log="$logs/$t.log"
  echo "fuzzing $t for ${seconds}s"
  set +e
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds memory per input.
  timeout --kill-after=30 "$((seconds + 120))" nice cargo fuzz run "${flags[@]}" "$t" \
    "$fuzz/target/corpus/$t" "$fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(awk '/stat::number_of_executed_units/{print $NF}' "$log" | tail -1)"
  rate="$(awk '/stat::average_exec_per_sec/{print $NF}' "$log" | tail -1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
  if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc, see $log)"; failed=1; fi
  echo "| $t | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result |" >> "$summary"
  echo "  $t: ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}: $result"
done
cat "$summary"
exit "$failed"
