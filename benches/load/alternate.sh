#!/usr/bin/env bash
# Fast alternation: the same measure as run.sh (the server's CPU time per
# request under `wrk -t1 -c32`, server pinned to one CPU, wrk to the other),
# but with every server of a case running side by side and wrk switching
# between them every WINDOW seconds, many times. On a virtual machine whose
# speed drifts by a quarter over tens of seconds, run.sh's rounds (a fresh
# server per run, runs minutes apart) cannot resolve a few tenths of a
# microsecond; windows a second or two apart share the machine's state, and
# the median over many adjacent blocks leaves the drift out.
#
# Per case: bare axum (constant bodies), the calibration server spin-1000
# (bare axum plus 1.0 µs of computation per request: it must read +1.0),
# our demo on the memory store and, with BEFORE, an older build of the demo,
# all started once on SERVER_CPU; then PAIRS blocks, each running every
# server for WINDOW seconds, in an order that rotates and reverses from
# block to block (use an even PAIRS). A window's figure is (utime + stime
# ticks of the server) / (requests wrk completed); a block's Δ is that
# figure minus bare axum's in the same block. Reported: the median of the
# blocks' Δ, its interquartile range, and the median absolute µs per
# request of each server; with BEFORE, also the median of ours − before.
#
# The servers run for the whole case, so on views-new our memory store grows
# through it (about 70,000 sessions per second of load), as a real server's
# store does.
#
#   bash benches/load/alternate.sh
#   CASES=views-session PAIRS=40 bash benches/load/alternate.sh
#   BEFORE=/tmp/demo-old bash benches/load/alternate.sh   # also an older
#                              # build of the demo, as a fourth server
#
# Environment: CASES (views-session,views-new,get-session), PAIRS (20),
# WINDOW (2, seconds), CONNECTIONS (32), SERVER_CPU (0), WRK_CPU (1),
# PORT_BASE (3950), SKIP_BUILD=1 (use the binaries already built),
# BEFORE (another demo executable, run as "before" beside "ours"),
# STORE (memory: the demo's SESSION_STORE for ours and before; cookie for
# cookie-store mode),
# WRK_BUSY_POLL=1 (preload busy-poll/busy_poll.c into wrk, as run.sh does),
# RESTART_EVERY (0: start each server once per case; N: start fresh server
# processes every N blocks, and bootstrap those groups of blocks together,
# so that each process's own offset, about ±0.1 µs, widens the intervals
# instead of hiding in them).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(cd "$HERE/../.." && pwd)
IFS=, read -ra CASES <<<"${CASES:-views-session,views-new,get-session}"
PAIRS=${PAIRS:-20}
WINDOW=${WINDOW:-2}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
PORT_BASE=${PORT_BASE:-3950}
RESTART_EVERY=${RESTART_EVERY:-0}
STORE=${STORE:-memory}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/alternate.XXXXXX")
HZ=$(getconf CLK_TCK)

command -v wrk >/dev/null 2>&1 || { echo "wrk is needed (apt-get install -y wrk)" >&2; exit 1; }
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  echo "building (release): the demo, and benches/load's bare-axum" >&2
  (cd "$MAIN" && cargo build --release --quiet -p session-axum --example demo)
  (cd "$HERE" && cargo build --release --quiet --bin bare-axum)
fi
BARE=$HERE/target/release/bare-axum
DEMO=$MAIN/target/release/examples/demo
[[ -x $BARE && -x $DEMO ]] || { echo "missing $BARE or $DEMO" >&2; exit 1; }
[[ -z ${BEFORE:-} || -x $BEFORE ]] || { echo "BEFORE=$BEFORE is not an executable" >&2; exit 1; }

WRK_ENV=()
if [[ ${WRK_BUSY_POLL:-0} == 1 ]]; then
  cc -O2 -shared -fPIC -o "$OUT/busy_poll.so" "$HERE/busy-poll/busy_poll.c" -ldl
  WRK_ENV=(LD_PRELOAD="$OUT/busy_poll.so")
fi

SECRET=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=()
# (The servers are started inside command substitutions, so they are not
# this shell's children: they are killed, not waited for.)
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME PORT ENV... -- CMD: starts a server pinned to SERVER_CPU and
# waits for its listening line; prints its pid.
start() {
  local name=$1 port=$2 log=$OUT/$1.log
  shift 2
  env "$@" PORT="$port" taskset -c "$SERVER_CPU" "${CMD[@]}" >"$log" 2>&1 &
  local pid=$! i
  for ((i = 0; i < 150; i++)); do
    grep -qx "listening on http://127.0.0.1:$port" "$log" && { echo "$pid"; return; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  echo "$name did not start:" >&2; cat "$log" >&2; exit 1
}

ticks() { # utime + stime of a pid, in clock ticks
  local stat
  stat=$(<"/proc/$1/stat") || { echo "server $1 is gone" >&2; return 1; }
  awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

cookie_of() { # base url -> the session cookie its /views sets (empty for bare)
  curl -sS -D - -o /dev/null "$1/views" | tr -d '\r' \
    | awk '!found && tolower($1) == "set-cookie:" { sub(/^[^:]*:[ ]*/, ""); split($0, a, ";"); print a[1]; found = 1 }'
}

# start_all: starts every server of $names for $case (fresh processes on
# new ports), each with its session cookie in HDR when the case replays one.
start_all() {
  local name c
  for name in "${names[@]}"; do
    port=$((port + 1))
    case $name in
      bare-axum) CMD=("$BARE"); pid=$(start "$name" "$port" BENCH_SPIN_NS=0) ;;
      spin-1000) CMD=("$BARE"); pid=$(start "$name" "$port" BENCH_SPIN_NS=1000) ;;
      ours) CMD=("$DEMO"); pid=$(start "$name" "$port" SESSION_SECRET="$SECRET" SESSION_STORE="$STORE" DEMO_RUNTIME=current_thread) ;;
      before) CMD=("$BEFORE"); pid=$(start "$name" "$port" SESSION_SECRET="$SECRET" SESSION_STORE="$STORE" DEMO_RUNTIME=current_thread) ;;
    esac
    PIDS+=("$pid")
    PID[$name]=$pid
    BASE[$name]=http://127.0.0.1:$port
    HDR[$name]=""
    if [[ $case != views-new ]]; then
      c=$(cookie_of "${BASE[$name]}")
      if [[ -n $c ]]; then HDR[$name]="Cookie: $c"; fi
      if [[ ($name == ours || $name == before) && -z $c ]]; then
        echo "$name set no cookie on /views" >&2
        exit 1
      fi
    fi
  done
}

stop_all() {
  local name
  for name in "${names[@]}"; do kill "${PID[$name]}" 2>/dev/null || true; done
}

echo "Fast alternation, $(date -u +%Y-%m-%dT%H:%MZ): $PAIRS blocks of bare-axum, spin-1000 and ours${BEFORE:+ and before ($BEFORE)}, SESSION_STORE=$STORE (rotating order), ${WINDOW} s of wrk -t1 -c$CONNECTIONS each; server on CPU $SERVER_CPU, wrk on CPU $WRK_CPU${WRK_ENV[*]:+, wrk busy-polls}. Raw figures: $OUT"
echo
echo "| case | server | µs/req (median) | Δ µs over bare (median of blocks) | Δ interquartile range | the median's 95 % interval | blocks |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
port=$PORT_BASE
for case in "${CASES[@]}"; do
  case $case in
    views-session | views-new) path=/views ;;
    get-session) path=/get ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
  names=(bare-axum spin-1000 ours)
  [[ -n ${BEFORE:-} ]] && names+=(before)
  declare -A PID=() BASE=() HDR=()
  start_all
  : >"$OUT/$case.tsv"
  for ((b = 0; b < PAIRS; b++)); do
    if ((RESTART_EVERY > 0 && b > 0 && b % RESTART_EVERY == 0)); then
      stop_all
      start_all
    fi
    # Block b runs rotation b/2 of the servers, forwards when b is even and
    # backwards when it is odd: over each pair of blocks every server runs
    # as often early as late, and right after each of its neighbours as
    # often as right before it.
    n=${#names[@]}
    r=$(((b / 2) % n))
    for ((k = 0; k < n; k++)); do
      if ((b % 2 == 0)); then
        name=${names[$(((r + k) % n))]}
      else
        name=${names[$(((r + n - 1 - k) % n))]}
      fi
      hdr=()
      [[ -n ${HDR[$name]} ]] && hdr=(-H "${HDR[$name]}")
      t0=$(ticks "${PID[$name]}")
      env "${WRK_ENV[@]}" taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${WINDOW}s" "${hdr[@]}" \
        "${BASE[$name]}$path" >"$OUT/wrk.out" 2>&1
      t1=$(ticks "${PID[$name]}")
      reqs=$(awk '/requests in/ { print $1 }' "$OUT/wrk.out")
      non2xx=$(awk '/Non-2xx/ { print $NF }' "$OUT/wrk.out")
      [[ -n $reqs && $reqs -gt 0 ]] || { echo "wrk failed:" >&2; cat "$OUT/wrk.out" >&2; exit 1; }
      [[ -z $non2xx ]] || { echo "$name $case: $non2xx non-2xx answers" >&2; exit 1; }
      awk -v b="$b" -v n="$name" -v t="$((t1 - t0))" -v r="$reqs" -v hz="$HZ" \
        'BEGIN { printf "%d\t%s\t%.4f\n", b, n, t / hz / r * 1e6 }' >>"$OUT/$case.tsv"
    done
  done
  stop_all
  python3 - "$OUT/$case.tsv" "$case" "$RESTART_EVERY" <<'PY'
import random, statistics, sys
path, case, restart = sys.argv[1], sys.argv[2], int(sys.argv[3])
per = {}
for line in open(path):
    b, name, us = line.split("\t")
    per.setdefault(name, {})[int(b)] = float(us)
def interval(deltas):
    # Where the median of the blocks' differences lies, 95 % of the time
    # (bootstrap: 2,000 resamples, a fixed seed so a rerun prints the same).
    # With RESTART_EVERY, the blocks of one set of server processes are
    # resampled together, so that each process's own offset counts.
    groups = {}
    for b, d in deltas.items():
        groups.setdefault(b // restart if restart else b, []).append(d)
    groups = list(groups.values())
    if len(groups) < 4:
        return "", ""
    rng = random.Random(1)
    meds = sorted(
        statistics.median([d for g in rng.choices(groups, k=len(groups)) for d in g])
        for _ in range(2000)
    )
    return f"{meds[50]:+.2f}", f"{meds[1949]:+.2f}"
def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]
bare = per["bare-axum"]
for name in ("bare-axum", "spin-1000", "ours", "before"):
    if name not in per:
        continue
    mine = per[name]
    med = statistics.median(mine.values())
    if name == "bare-axum":
        print(f"| {case} | {name} | {med:.2f} | +0.00 | | | {len(mine)} |")
        continue
    by_block = {b: mine[b] - bare[b] for b in mine if b in bare}
    deltas = list(by_block.values())
    lo, hi = quartiles(deltas)
    clo, chi = interval(by_block)
    print(f"| {case} | {name} | {med:.2f} | **{statistics.median(deltas):+.2f}** | {lo:+.2f} … {hi:+.2f} | {clo} … {chi} | {len(deltas)} |")
if "before" in per:
    # The two builds of the demo against each other, block by block.
    ours, before = per["ours"], per["before"]
    by_block = {b: ours[b] - before[b] for b in ours if b in before}
    deltas = list(by_block.values())
    lo, hi = quartiles(deltas)
    clo, chi = interval(by_block)
    print(f"| {case} | ours − before | | **{statistics.median(deltas):+.2f}** | {lo:+.2f} … {hi:+.2f} | {clo} … {chi} | {len(deltas)} |")
PY
done
