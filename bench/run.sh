#!/usr/bin/env bash
# Side-by-side benchmark: Envoy alone, Envoy + jwt_authn(cache) + RBAC, Envoy + fhirgate (full policy).
# Envoy: one worker pinned to core 0; wrk pinned to core 1; loopback only; direct_response upstream.
# Scenarios: (a) one repeated token; (b) 100,000 distinct valid tokens, each seen for the first
# time (more tokens than requests in a run: every request verifies a signature, in fhirgate and in
# jwt_authn alike, and RSS shows whether the caches stay bounded); (c) opaque tokens, warm
# introspection cache. Writes bench/results.md and the table in README.md (between the
# `bench:results` markers).
#
#   bench/run.sh            (make bench)   BENCH_SECONDS=10 BENCH_CONNECTIONS=16 BENCH_TOKENS=100000
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENVOY="${ENVOY:-$ROOT/.venv/bin/envoy}"
WASM="${WASM:-$ROOT/target/fhirgate.wasm}"
# The size-optimized build (make wasm-size), measured too when present.
WASM_SIZE="${WASM_SIZE:-$ROOT/target/fhirgate-size.wasm}"
SECS="${BENCH_SECONDS:-10}"
CONNS="${BENCH_CONNECTIONS:-16}"
NTOK="${BENCH_TOKENS:-100000}"
WORK="$ROOT/target/bench"
RESULTS="${RESULTS:-$ROOT/bench/results.md}"
README="${README:-$ROOT/README.md}"
URL="http://127.0.0.1:18000"
CPU_ENVOY="${CPU_ENVOY:-0}"
CPU_LOAD="${CPU_LOAD:-1}"

for tool in wrk node taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (make bench installs wrk)"; exit 1; }
done
[ -x "$ENVOY" ] || { echo "bench: $ENVOY missing (make tools-envoy)"; exit 1; }
[ -f "$WASM" ] || { echo "bench: $WASM missing (make wasm)"; exit 1; }

mkdir -p "$WORK"
echo "bench: generating keys, $NTOK tokens and configs in $WORK"
WASM="$WASM" node "$ROOT/bench/gen.mjs" "$WORK" "$NTOK"
ISSUER="$(node -p "require('$WORK/meta.json').ISSUER")"
AUDIENCE="$(node -p "require('$WORK/meta.json').AUDIENCE")"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

node "$ROOT/bench/introspect.mjs" 18081 "$ISSUER" "$AUDIENCE" &
PIDS+=($!)

TICK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

start_envoy() { # config-file -> sets EPID
  taskset -c "$CPU_ENVOY" "$ENVOY" -c "$1" --concurrency 1 --disable-hot-restart -l error \
    --base-id 7 >"$WORK/envoy.log" 2>&1 &
  EPID=$!
  PIDS+=("$EPID")
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:18001/ready" >/dev/null 2>&1 && return 0
    kill -0 "$EPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: envoy did not start with $1"; tail -20 "$WORK/envoy.log"; exit 1
}

stop_envoy() { kill "$EPID" 2>/dev/null || true; wait "$EPID" 2>/dev/null || true; }

ms() { # wrk latency ("1.23ms", "456.00us", "1.02s") -> ms
  awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }'
}

ROWS=()
# run <setup> <scenario> <token-file> <once-per-token?> -> appends a row
run() {
  local setup="$1" scenario="$2" tokens="$3"
  local out="$WORK/wrk-$setup-$scenario.txt"
  # warm-up (JIT, caches, introspection) then the measured run
  TOKENS="$tokens" taskset -c "$CPU_LOAD" wrk -t1 -c"$CONNS" -d2s -s "$ROOT/bench/wrk.lua" "$URL" >/dev/null
  local t0 r0; t0="$(cpu_ticks "$EPID")"
  TOKENS="$tokens" taskset -c "$CPU_LOAD" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$ROOT/bench/wrk.lua" "$URL" >"$out"
  local t1; t1="$(cpu_ticks "$EPID")"
  local rss; rss="$(rss_kib "$EPID")"
  local reqs rps p50 p99 non2xx
  reqs="$(awk '/requests in/{print $1}' "$out")"
  rps="$(awk '/^Requests\/sec/{print $2}' "$out")"
  p50="$(ms "$(awk '$1=="50%"{print $2}' "$out")")"
  p99="$(ms "$(awk '$1=="99%"{print $2}' "$out")")"
  non2xx="$(awk '/Non-2xx/{print $NF}' "$out")"; non2xx="${non2xx:-0}"
  local cpu_us; cpu_us="$(awk -v a="$t0" -v b="$t1" -v t="$TICK" -v n="$reqs" 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}')"
  printf 'bench: %-13s %-3s %9s req/s  cpu %7s us/req  p50 %6s ms  p99 %6s ms  rss %6s MiB  non-2xx %s\n' \
    "$setup" "$scenario" "$rps" "$cpu_us" "$p50" "$p99" "$((rss / 1024))" "$non2xx"
  ROWS+=("$setup|$scenario|$rps|$cpu_us|$p50|$p99|$((rss / 1024))|$non2xx")
}

start_envoy "$WORK/envoy-alone.json";    run alone a "$WORK/token.txt"; stop_envoy
start_envoy "$WORK/envoy-native.json";   run native a "$WORK/token.txt"; run native b "$WORK/tokens.txt"; stop_envoy
start_envoy "$WORK/envoy-fhirgate.json"; run fhirgate a "$WORK/token.txt"; run fhirgate b "$WORK/tokens.txt"
run fhirgate c "$WORK/opaque.txt"; stop_envoy
if [ -f "$WASM_SIZE" ]; then
  sed "s|$WASM|$WASM_SIZE|" "$WORK/envoy-fhirgate.json" >"$WORK/envoy-fhirgate-size.json"
  start_envoy "$WORK/envoy-fhirgate-size.json"; run fhirgate-size a "$WORK/token.txt"
  run fhirgate-size b "$WORK/tokens.txt"; stop_envoy
fi

rps_of() {
  for r in "${ROWS[@]}"; do IFS='|' read -r s c v _ <<<"$r"; if [ "$s|$c" = "$1|$2" ]; then echo "$v"; fi; done
}
rss_of() {
  for r in "${ROWS[@]}"; do IFS='|' read -r s c _ _ _ _ m _ <<<"$r"; if [ "$s|$c" = "$1|$2" ]; then echo "$m"; fi; done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
alone="$(rps_of alone a)"
table="$(
  echo "Generated by \`make bench\` on $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)),"
  echo "Envoy $("$ENVOY" --version | grep -o '/1\.[0-9.]*/' | head -1 | tr -d /) with --concurrency 1 on core $CPU_ENVOY, wrk -t1 -c$CONNS on core $CPU_LOAD, ${SECS}s per cell, direct_response upstream,"
  echo "fhirgate.wasm $(stat -c %s "$WASM") bytes (opt-level 3), fhirgate-size.wasm $(stat -c %s "$WASM_SIZE" 2>/dev/null || echo -) bytes (opt-level z); (b): $NTOK distinct RS256 tokens, each request presents one not seen before."
  echo
  echo "| ratio | (a) one token | (b) distinct tokens | (c) opaque, warm cache |"
  echo "|---|---|---|---|"
  echo "| fhirgate / native jwt_authn+RBAC | $(ratio "$(rps_of fhirgate a)" "$(rps_of native a)") | $(ratio "$(rps_of fhirgate b)" "$(rps_of native b)") | n/a |"
  echo "| fhirgate / Envoy alone | $(ratio "$(rps_of fhirgate a)" "$alone") | $(ratio "$(rps_of fhirgate b)" "$alone") | $(ratio "$(rps_of fhirgate c)" "$alone") |"
  if [ -f "$WASM_SIZE" ]; then
    echo "| fhirgate-size / native jwt_authn+RBAC | $(ratio "$(rps_of fhirgate-size a)" "$(rps_of native a)") | $(ratio "$(rps_of fhirgate-size b)" "$(rps_of native b)") | |"
  fi
  echo "| RSS MiB above Envoy alone (fhirgate) | $(( $(rss_of fhirgate a) - $(rss_of alone a) )) | $(( $(rss_of fhirgate b) - $(rss_of alone a) )) | $(( $(rss_of fhirgate c) - $(rss_of alone a) )) |"
  echo
  echo "| setup | scenario | req/s | Envoy CPU µs/req | p50 ms | p99 ms | RSS MiB | non-2xx |"
  echo "|---|---|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
  echo "| native | c | n/a (jwt_authn has no introspection) | | | | | |"
)"
{
  echo "# fhirgate benchmark results"
  echo
  echo "$table"
} >"$RESULTS"
echo "bench: wrote $RESULTS"
if grep -q '^<!-- bench:results:start -->$' "$README" && grep -q '^<!-- bench:results:end -->$' "$README"; then
  TABLE="$table" awk '
    /^<!-- bench:results:start -->$/ { print; print ENVIRON["TABLE"]; skip = 1; next }
    /^<!-- bench:results:end -->$/ { skip = 0 }
    !skip { print }' "$README" >"$README.tmp" && mv "$README.tmp" "$README"
  echo "bench: updated the results table in $README"
fi
cat "$RESULTS"
