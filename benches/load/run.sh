#!/usr/bin/env bash
# Load benchmark: session libraries against a session-less axum baseline.
#
# Method (see /work/shared/perf-anchors.md): one server worker pinned to CPU 0,
# `wrk -t1 -c32 --latency` pinned to CPU 1, release builds, configurations
# interleaved within every round, median over rounds. For every run we record
# req/s, p99 latency and the server's CPU time per request (utime+stime from
# /proc/PID/stat, before and after the wrk run, divided by the requests wrk
# completed). "Δ µs" is that CPU time minus the baseline's for the same case;
# "ratio" is req/s over the baseline's. Prefer Δ µs: req/s moves a lot on a
# noisy machine.
#
# Every (round, case, server) gets a freshly started server, so no case runs
# against a store filled by another (views-new creates ~1 session per request).
#
# Environment (all optional):
#   ROUNDS=3          rounds; the table shows medians over them
#   DURATION=10       seconds per wrk run
#   CONNECTIONS=32    wrk connections (one wrk thread)
#   SERVER_CPU=0 WRK_CPU=1   CPUs for taskset
#   PORT_BASE=3900    first TCP port tried (a new port for every server start)
#   ONLY=a,b          run only the servers with these names
#   CASES=views-session,views-new,get-session   the cases to run
#   BASELINE=bare-axum   the entry that ratio and Δ µs are relative to
#   SKIP_BUILD=1      do not run cargo (use the binaries already built)
#   BUILD_DEMO=0      do not build our demo from the main workspace
#   NICE_BUILD=1      run the cargo builds under `nice -n 19` (the benchmark
#                     itself never runs niced)
#   OUT_DIR=dir       where raw wrk output, server logs, results.tsv and
#                     summary.md go (default: a new directory under /tmp)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(cd "$HERE/../.." && pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
PORT_BASE=${PORT_BASE:-3900}
BASELINE=${BASELINE:-bare-axum}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/load-bench.XXXXXX")}
mkdir -p "$OUT_DIR"
IFS=, read -ra CASE_LIST <<<"${CASES:-views-session,views-new,get-session}"

# A fixed 64-byte key (128 hex chars), so runs are comparable.
SECRET=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f

# ---------------------------------------------------------------------------
# The servers: one entry per configuration, "name|binary-or-command|env".
#   binary-or-command: a bare name is a binary of this workspace
#     (benches/load/target/release/NAME); anything with a "/" is a path
#     (relative paths are relative to the repository root); words after the
#     first are arguments.
#   env: space-separated NAME=VALUE pairs (no spaces inside values). PORT is
#     set by this script. Every server must print
#     `listening on http://127.0.0.1:PORT` once ready, and must run ONE
#     worker thread: our binaries here use a tokio current_thread runtime;
#     our demo builds a multi-thread runtime and honours
#     TOKIO_WORKER_THREADS=1 (set below).
# The first entry whose name is $BASELINE is the reference.
# A missing binary is skipped with a note.
SERVERS=(
  "bare-axum|bare-axum|"
  "tower-sessions-signed|peer-tower-sessions|SESSION_SECRET=$SECRET"
  # "tower-sessions-plain|peer-tower-sessions|TS_COOKIE=plain"
  # Baseline on the same runtime shape as our demo (multi-thread, 1 worker):
  "bare-axum-mt|bare-axum|BENCH_RUNTIME=multi_thread TOKIO_WORKER_THREADS=1"
  "ours-axum-memory|target/release/examples/demo|SESSION_SECRET=$SECRET SESSION_STORE=memory TOKIO_WORKER_THREADS=1"
)
DEMO_BIN=$MAIN/target/release/examples/demo

# case -> path requested, and whether a session cookie is replayed
case_path() {
  case $1 in
    views-session | views-new) echo /views ;;
    get-session) echo /get ;;
    *) echo "unknown case: $1" >&2; exit 2 ;;
  esac
}
case_cookie() { [[ $1 != views-new ]]; }

note() { printf '== %s\n' "$*" >&2; }
warn() { printf '!! %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------
# (a) wrk
if ! command -v wrk >/dev/null 2>&1; then
  note "installing wrk"
  SUDO=()
  [[ $(id -u) -ne 0 ]] && SUDO=(sudo)
  "${SUDO[@]}" apt-get install -y wrk >"$OUT_DIR/apt.log" 2>&1 \
    || { "${SUDO[@]}" apt-get update >>"$OUT_DIR/apt.log" 2>&1 \
         && "${SUDO[@]}" apt-get install -y wrk >>"$OUT_DIR/apt.log" 2>&1; } \
    || { warn "could not install wrk, see $OUT_DIR/apt.log"; exit 1; }
fi
for tool in taskset curl getconf; do
  command -v "$tool" >/dev/null 2>&1 || { warn "$tool is required"; exit 1; }
done

# (b) builds
build() {
  if [[ ${NICE_BUILD:-0} == 1 ]]; then nice -n 19 "$@"; else "$@"; fi
}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  note "building the servers of benches/load (release)"
  (cd "$HERE" && build cargo build --release --quiet)
  if [[ ${BUILD_DEMO:-1} != 0 && -f $MAIN/session-axum/examples/demo.rs ]]; then
    note "building our demo (cargo build --release -p session-axum --example demo)"
    if ! (cd "$MAIN" && build cargo build --release --quiet -p session-axum --example demo); then
      # Never benchmark a stale binary.
      warn "building the demo failed: it is skipped"
      DEMO_BIN=""
    fi
  fi
fi

# ---------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime + stime (fields 14 and 15) of a process, in clock ticks. The comm
# field may hold spaces, so count fields after its closing parenthesis.
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  # rest starts at field 3 (state): utime is its 12th word, stime its 13th
  awk '{ print $12 + $13 }' <<<"$rest"
}

# "1.23ms" / "512.00us" / "1.02s" / "2.00m" -> milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.4f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.4f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.4f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.4f", v * 1000 }
    else { print "nan" } }'
}

resolve_cmd() { # entry command string -> absolute command line
  local first rest
  read -r first rest <<<"$1"
  if [[ $first != */* ]]; then
    first=$HERE/target/release/$first
  elif [[ $first != /* ]]; then
    first=$MAIN/$first
  fi
  echo "$first${rest:+ $rest}"
}

# Which entries run: the binary must exist (our demo until it is written).
declare -a RUN=()
for entry in "${SERVERS[@]}"; do
  IFS='|' read -r name cmd envs <<<"$entry"
  if [[ -n ${ONLY:-} && ",$ONLY," != *",$name,"* ]]; then continue; fi
  full=$(resolve_cmd "$cmd")
  bin=${full%% *}
  if [[ $bin == "$MAIN/target/release/examples/demo" && -z $DEMO_BIN ]]; then
    note "skipping $name: its build failed"
    continue
  fi
  if [[ ! -x $bin ]]; then
    note "skipping $name: $bin does not exist yet (build it with: cd $MAIN && cargo build --release -p session-axum --example demo)"
    continue
  fi
  RUN+=("$entry")
done
((${#RUN[@]} > 0)) || { warn "no server to run"; exit 1; }

RESULTS=$OUT_DIR/results.tsv
printf 'round\tserver\tcase\treq_per_s\tp99_ms\tcpu_us_per_req\trequests\tnon2xx\n' >"$RESULTS"

note "load average before start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes figures noisy)"
note "raw output in $OUT_DIR"

start_seq=0
run_one() { # round name cmd envs case
  local round=$1 name=$2 cmd=$3 envs=$4 case=$5
  local port=$((PORT_BASE + start_seq % 500))
  start_seq=$((start_seq + 1))
  local tag="r$round-$name-$case"
  local log=$OUT_DIR/$tag.server.log
  local -a envv cmdv
  read -ra envv <<<"$envs"
  read -ra cmdv <<<"$(resolve_cmd "$cmd")"

  # env and taskset exec, so $! is the server process itself.
  env "${envv[@]}" PORT="$port" taskset -c "$SERVER_CPU" "${cmdv[@]}" >"$log" 2>&1 &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 150; i++)); do
    grep -qx "listening on http://127.0.0.1:$port" "$log" && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      warn "$name exited before listening:"; cat "$log" >&2; SERVER_PID=""; return 1
    fi
    sleep 0.1
  done
  if ((i == 150)); then
    warn "$name did not print its listening line in 15 s"; cleanup; SERVER_PID=""; return 1
  fi

  local base=http://127.0.0.1:$port path cookie=""
  path=$(case_path "$case")
  if case_cookie "$case"; then
    # One request to /views creates the session; replay its cookie.
    cookie=$(curl -sS -D - -o /dev/null "$base/views" | tr -d '\r' \
      | awk 'tolower($1) == "set-cookie:" { sub(/^[^:]*:[ ]*/, ""); split($0, a, ";"); print a[1]; exit }')
    if [[ -z $cookie && $name != "$BASELINE" ]]; then
      warn "$name: no Set-Cookie on the first GET /views"
    fi
  fi
  local -a hdr=()
  [[ -n $cookie ]] && hdr=(-H "Cookie: $cookie")
  # Sanity: the route answers 200 (and show the body in the log).
  local status
  status=$(curl -sS "${hdr[@]}" -o "$OUT_DIR/$tag.body" -w '%{http_code}' "$base$path")
  if [[ $status != 200 ]]; then
    warn "$name $case: GET $path answered $status ($(head -c 200 "$OUT_DIR/$tag.body"))"
  fi

  local t0 t1 out=$OUT_DIR/$tag.wrk
  t0=$(cpu_ticks "$SERVER_PID")
  taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${hdr[@]}" "$base$path" >"$out" 2>&1
  t1=$(cpu_ticks "$SERVER_PID")
  cleanup
  SERVER_PID=""

  local requests rps p99 non2xx cpu_us
  requests=$(awk '/ requests in / { print $1; exit }' "$out")
  rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
  p99=$(awk '/Latency Distribution/ { d = 1 } d && $1 == "99%" { print $2; exit }' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF; exit }' "$out")
  non2xx=${non2xx:-0}
  if [[ -z $requests || -z $rps || -z $p99 || $requests == 0 ]]; then
    warn "$name $case: could not read wrk's output:"; cat "$out" >&2; return 1
  fi
  ((non2xx == 0)) || warn "$name $case: $non2xx non-2xx/3xx responses"
  grep -q '^  Socket errors' "$out" && warn "$name $case: $(grep '^  Socket errors' "$out")"
  cpu_us=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$requests" \
    'BEGIN { printf "%.3f", (b - a) * 1e6 / hz / n }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$case" "$rps" "$(to_ms "$p99")" \
    "$cpu_us" "$requests" "$non2xx" >>"$RESULTS"
  note "round $round  $name  $case: $rps req/s, p99 $p99, $cpu_us µs CPU/req"
}

for ((round = 1; round <= ROUNDS; round++)); do
  for case in "${CASE_LIST[@]}"; do
    for entry in "${RUN[@]}"; do
      IFS='|' read -r name cmd envs <<<"$entry"
      run_one "$round" "$name" "$cmd" "$envs" "$case" || warn "run failed: round $round $name $case"
    done
  done
done

# ---------------------------------------------------------------------------
# Medians per (server, case), relative to the baseline.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { # server case column -> median
  awk -F'\t' -v s="$1" -v c="$2" -v k="$3" 'NR > 1 && $2 == s && $3 == c { print $k }' "$RESULTS" | median
}
nrounds() { awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $2 == s && $3 == c' "$RESULTS" | wc -l; }

SUMMARY=$OUT_DIR/summary.md
{
  echo "Load benchmark, $(date -u +%Y-%m-%dT%H:%MZ): medians over rounds; wrk -t1 -c$CONNECTIONS -d${DURATION}s on CPU $WRK_CPU, server on CPU $SERVER_CPU; ratio and Δ µs against \`$BASELINE\`."
  echo
  echo "| server | case | rounds | req/s | p99 (ms) | CPU µs/req | ratio | Δ µs |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  for case in "${CASE_LIST[@]}"; do
    base_rps=$(col "$BASELINE" "$case" 4)
    base_cpu=$(col "$BASELINE" "$case" 6)
    for entry in "${RUN[@]}"; do
      IFS='|' read -r name _ _ <<<"$entry"
      n=$(nrounds "$name" "$case")
      ((n > 0)) || continue
      rps=$(col "$name" "$case" 4)
      p99=$(col "$name" "$case" 5)
      cpu=$(col "$name" "$case" 6)
      awk -v name="$name" -v c="$case" -v n="$n" -v rps="$rps" -v p99="$p99" -v cpu="$cpu" \
        -v brps="$base_rps" -v bcpu="$base_cpu" 'BEGIN {
          ratio = (brps == "nan" || brps == 0) ? "n/a" : sprintf("%.2f", rps / brps)
          delta = (bcpu == "nan") ? "n/a" : sprintf("%+.2f", cpu - bcpu)
          printf "| %s | %s | %d | %.0f | %.2f | %.2f | %s | %s |\n", name, c, n, rps, p99, cpu, ratio, delta }'
    done
  done
} >"$SUMMARY"
echo
cat "$SUMMARY"
echo
note "per-run figures: $RESULTS"
