#!/usr/bin/env bash
# Side-by-side benchmark, all setups in the same run (compare within a run: the machine is shared):
#   alone     Envoy alone (direct response)
#   nop       Envoy + a do-nothing proxy-wasm filter (bench/nop): the floor of any Wasm filter
#   native    Envoy + jwt_authn (with its cache) + RBAC
#   fhirgate  Envoy + fhirgate, the contract's configuration (JWT, SMART, compartment, the consent
#             check of the response, audit, three CEL rules)
# Envoy: one worker pinned to CPU_ENVOY; wrk pinned to CPU_LOAD; loopback only. Every request is
# `GET /fhir/Patient/123`, answered with a FHIR Patient as a FHIR server sends it (gen.mjs).
# Scenarios, for RS256 and for ES256 tokens:
#   a  one repeated token
#   b  BENCH_TOKENS distinct tokens rotated (after one pass that fills the caches)
#   c  BENCH_TOKENS first-seen tokens, one request each (bench/once.mjs: wrk cannot stop after
#      a number of requests; its req/s is node's, its Envoy CPU per request is comparable)
# Envoy CPU per request is the utime+stime delta of /proc/<envoy>/stat over the cell divided by
# its requests; RSS is read after each setup's last cell. Writes RESULTS (bench/results.md) and,
# when README is set, the table between the `bench:results` markers of the README.
#
#   bench/run.sh   (make bench)   BENCH_SECONDS=5 BENCH_CONNECTIONS=16 BENCH_TOKENS=10000
#   BENCH_SMOKE=1  (make bench-smoke) a few hundred requests per cell, checks that every cell
#                  answered 200 and that fhirgate's signatures went to Envoy; no timing claims.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENVOY="${ENVOY:-$ROOT/.venv/bin/envoy}"
WASM="${WASM:-$ROOT/target/fhirgate.wasm}"
WASM_NOP="${WASM_NOP:-$ROOT/target/nop/wasm32-wasip1/release/fhirgate_bench_nop.wasm}"
# The size-optimized build (make wasm-size), measured too when BENCH_SIZE=1.
WASM_SIZE="${WASM_SIZE:-$ROOT/target/fhirgate-size.wasm}"
SMOKE="${BENCH_SMOKE:-0}"
if [ "$SMOKE" = 1 ]; then
  SECS="${BENCH_SECONDS:-1}"; NTOK="${BENCH_TOKENS:-300}"; WORK="$ROOT/target/bench-smoke"
  RESULTS="${RESULTS:-$WORK/results.md}"; README="${README:-}"
else
  SECS="${BENCH_SECONDS:-5}"; NTOK="${BENCH_TOKENS:-10000}"; WORK="$ROOT/target/bench"
  RESULTS="${RESULTS:-$ROOT/bench/results.md}"; README="${README-$ROOT/README.md}"
fi
CONNS="${BENCH_CONNECTIONS:-16}"
URL="http://127.0.0.1:18000"
REQ_PATH="/fhir/Patient/123"
CPU_ENVOY="${CPU_ENVOY:-0}"
CPU_LOAD="${CPU_LOAD:-1}"

for tool in wrk node taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (make bench installs wrk)"; exit 1; }
done
[ -x "$ENVOY" ] || { echo "bench: $ENVOY missing (make tools-envoy)"; exit 1; }
[ -f "$WASM" ] || { echo "bench: $WASM missing (make wasm)"; exit 1; }
[ -f "$WASM_NOP" ] || { echo "bench: $WASM_NOP missing (make bench-nop)"; exit 1; }

mkdir -p "$WORK"
echo "bench: generating keys, 2 x $NTOK tokens per algorithm and configs in $WORK"
WASM="$WASM" WASM_NOP="$WASM_NOP" WASM_SIZE="$([ "${BENCH_SIZE:-0}" = 1 ] && echo "$WASM_SIZE")" \
  node "$ROOT/bench/gen.mjs" "$WORK" "$NTOK"

EPID=""
cleanup() { [ -n "$EPID" ] && kill "$EPID" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

TICK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

start_envoy() { # config-file -> sets EPID
  taskset -c "$CPU_ENVOY" "$ENVOY" -c "$1" --concurrency 1 --disable-hot-restart -l error \
    --base-id 7 >"$WORK/envoy.log" 2>&1 &
  EPID=$!
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:18001/ready" >/dev/null 2>&1 && return 0
    kill -0 "$EPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: envoy did not start with $1"; tail -20 "$WORK/envoy.log"; exit 1
}

stop_envoy() { kill "$EPID" 2>/dev/null || true; wait "$EPID" 2>/dev/null || true; EPID=""; }

# load <token-file> <seconds> -> wrk's output (tokens in turn, for that long)
load() {
  TOKENS="$1" REQ_PATH="$REQ_PATH" taskset -c "$CPU_LOAD" \
    wrk -t1 -c"$CONNS" -d"${2}s" -s "$ROOT/bench/wrk.lua" "$URL"
}

# once <token-file> -> "requests non2xx seconds" (each token in exactly one request)
once() {
  taskset -c "$CPU_LOAD" node "$ROOT/bench/once.mjs" "$URL" "$REQ_PATH" "$1" "$CONNS"
}

stat_of() { # admin counter value (0 when absent)
  curl -fsS "http://127.0.0.1:18001/stats?filter=$1" 2>/dev/null | awk -F': ' -v n="$1" '$1==n{print $2}' | head -1 | grep . || echo 0
}

ROWS=()
# cell <setup> <alg> <scenario> -> appends "setup|alg|scenario|requests|req/s|cpu µs/req|non-2xx"
cell() {
  local setup="$1" alg="$2" scenario="$3"
  local out="$WORK/load-$setup-$alg-$scenario.txt"
  local t0 t1 reqs rps non2xx
  case "$scenario" in
    a) load "$WORK/$alg-one.txt" 1 >/dev/null
       t0="$(cpu_ticks "$EPID")"; load "$WORK/$alg-one.txt" "$SECS" >"$out"; t1="$(cpu_ticks "$EPID")" ;;
    b) once "$WORK/$alg-rot.txt" >/dev/null   # one pass: every token verified and cached
       t0="$(cpu_ticks "$EPID")"; load "$WORK/$alg-rot.txt" "$SECS" >"$out"; t1="$(cpu_ticks "$EPID")" ;;
    c) t0="$(cpu_ticks "$EPID")"; once "$WORK/$alg-new.txt" >"$out"; t1="$(cpu_ticks "$EPID")" ;;
  esac
  if [ "$scenario" = c ]; then
    read -r reqs non2xx secs <"$out"
    rps="$(awk -v n="$reqs" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')"
  else
    reqs="$(awk '/requests in/{print $1}' "$out")"
    rps="$(awk '/^Requests\/sec/{printf "%.0f", $2}' "$out")"
    non2xx="$(awk '/Non-2xx/{print $NF}' "$out")"; non2xx="${non2xx:-0}"
  fi
  local cpu_us
  cpu_us="$(awk -v a="$t0" -v b="$t1" -v t="$TICK" -v n="$reqs" 'BEGIN{printf "%.1f", (b-a)/t*1e6/n}')"
  printf 'bench: %-13s %-5s %s %8s req %7s req/s  cpu %7s us/req  non-2xx %s\n' \
    "$setup" "$alg" "$scenario" "$reqs" "$rps" "$cpu_us" "$non2xx"
  ROWS+=("$setup|$alg|$scenario|$reqs|$rps|$cpu_us|$non2xx")
}

declare -A RSS
SIGS_HOST=0; SIGS_WASM=0
setup() { # setup-name config
  start_envoy "$2"
  load "$WORK/rs256-one.txt" 2 >/dev/null   # JIT and first-request warm-up
  for alg in rs256 es256; do for s in a b c; do cell "$1" "$alg" "$s"; done; done
  RSS[$1]="$(( $(rss_kib "$EPID") / 1024 ))"
  if [ "$1" = fhirgate ]; then
    sleep 1.2   # fhirgate flushes its metrics on the 1 s tick
    SIGS_HOST="$(stat_of wasmcustom.fhirgate.signatures_host_total)"
    SIGS_WASM="$(stat_of wasmcustom.fhirgate.signatures_wasm_total)"
    echo "bench: fhirgate signatures checked by Envoy (verify_signature): $SIGS_HOST, in Wasm: $SIGS_WASM"
  fi
  echo "bench: $1 RSS after the run: ${RSS[$1]} MiB"
  stop_envoy
}

setup alone "$WORK/envoy-alone.json"
setup nop "$WORK/envoy-nop.json"
setup native "$WORK/envoy-native.json"
setup fhirgate "$WORK/envoy-fhirgate.json"
[ -f "$WORK/envoy-fhirgate-size.json" ] && setup fhirgate-size "$WORK/envoy-fhirgate-size.json"

field() { # setup alg scenario column(4 reqs, 5 rps, 6 cpu, 7 non2xx)
  for r in "${ROWS[@]}"; do
    IFS='|' read -r s a c _ <<<"$r"
    if [ "$s|$a|$c" = "$1|$2|$3" ]; then cut -d'|' -f"$4" <<<"$r"; fi
  done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
declare -A SCEN=([a]="one repeated token" [b]="$NTOK tokens rotated" [c]="$NTOK first-seen tokens")
table="$(
  echo "Generated by \`make bench\` on $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)),"
  echo "Envoy $("$ENVOY" --version | grep -o '/1\.[0-9.]*/' | head -1 | tr -d /) with --concurrency 1 on core $CPU_ENVOY, wrk -t1 -c$CONNS on core $CPU_LOAD, ${SECS}s per timed cell,"
  echo "\`GET /fhir/Patient/123\` answered with a FHIR Patient (direct response, HAPI-style headers); fhirgate.wasm $(stat -c %s "$WASM") bytes;"
  echo "fhirgate's signatures checked by Envoy's BoringSSL: $SIGS_HOST, in Wasm: $SIGS_WASM. Envoy CPU µs per request (lower is better):"
  echo
  echo "| scenario | alg | fhirgate / do-nothing Wasm | fhirgate / native jwt_authn+RBAC |"
  echo "|---|---|---|---|"
  for alg in rs256 es256; do for s in a b c; do
    f="$(field fhirgate $alg $s 6)"
    echo "| ${SCEN[$s]} | ${alg^^} | $(ratio "$f" "$(field nop $alg $s 6)") | $(ratio "$f" "$(field native $alg $s 6)") |"
  done; done
  echo
  echo "| scenario | alg | Envoy alone | do-nothing Wasm | native jwt_authn+RBAC | fhirgate |"
  echo "|---|---|---|---|---|---|"
  for alg in rs256 es256; do for s in a b c; do
    line="| ${SCEN[$s]} | ${alg^^} |"
    for setup in alone nop native fhirgate; do
      line="$line $(field $setup $alg $s 6) µs, $(field $setup $alg $s 5) req/s |"
    done
    echo "$line"
  done; done
  echo
  echo "RSS after the run: Envoy alone ${RSS[alone]} MiB, do-nothing Wasm ${RSS[nop]} MiB, native ${RSS[native]} MiB, fhirgate ${RSS[fhirgate]} MiB$([ -n "${RSS[fhirgate-size]:-}" ] && echo ", fhirgate-size ${RSS[fhirgate-size]} MiB")."
  if [ -n "${RSS[fhirgate-size]:-}" ]; then
    echo
    echo "fhirgate-size ($(stat -c %s "$WASM_SIZE") bytes), µs/request:$(for alg in rs256 es256; do for s in a b c; do printf ' %s %s %s;' "${alg^^}" "$s" "$(field fhirgate-size $alg $s 6)"; done; done)"
  fi
)"
{
  echo "# fhirgate benchmark results"
  echo
  echo "$table"
  echo
  echo "Raw cells (setup | alg | scenario | requests | req/s | Envoy CPU µs/req | non-2xx):"
  echo
  for r in "${ROWS[@]}"; do echo "    ${r//|/ | }"; done
} >"$RESULTS"
echo "bench: wrote $RESULTS"
cat "$RESULTS"

bad=0
for r in "${ROWS[@]}"; do
  IFS='|' read -r s a c _ _ _ n <<<"$r"
  if [ "$n" != 0 ]; then echo "bench: $s $a $c: $n answers were not 2xx"; bad=1; fi
done
if [ "$SIGS_HOST" = 0 ]; then echo "bench: fhirgate checked no signature through Envoy's verify_signature"; bad=1; fi
[ "$bad" = 0 ] || exit 1

if [ -n "$README" ] && grep -q '^<!-- bench:results:start -->$' "$README" && grep -q '^<!-- bench:results:end -->$' "$README"; then
  TABLE="$table" awk '
    /^<!-- bench:results:start -->$/ { print; print ENVIRON["TABLE"]; skip = 1; next }
    /^<!-- bench:results:end -->$/ { skip = 0 }
    !skip { print }' "$README" >"$README.tmp" && mv "$README.tmp" "$README"
  echo "bench: updated the results table in $README"
fi
