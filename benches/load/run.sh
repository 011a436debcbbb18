#!/usr/bin/env bash
# Load benchmark: session libraries against a session-less baseline of their
# own framework (bare axum for the axum servers, bare actix-web for actix).
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
# Servers with sessions in Redis share ONE dedicated redis-server that this
# script starts (no persistence, pinned to the wrk CPU, so Redis runs "on the
# other core") and stops at exit. It is emptied (FLUSHALL) before every server
# start, and its `INFO commandstats` are reset before and read after every wrk
# run: Redis commands per request, as the client sent them (round trips) and
# in total (commands run inside Lua scripts are counted by commandstats too).
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
#   ONLY=a,b          run only the servers with these names. Some run only
#                     when named here: the calibration servers (spin-*,
#                     cookie-*, handler-*), tower-sessions-plain, and the
#                     whole-program builds (*-wp: the same servers compiled
#                     with lto = "fat" and codegen-units = 1 into
#                     target/whole-program of each workspace; naming one
#                     builds them all first, a few minutes, unless
#                     SKIP_BUILD=1; name bare-axum-wp too, their baseline)
#   CASES=views-session,views-new,get-session   the cases to run; also
#                     views-many: /views round-robin over MANY_SESSIONS
#                     (default 256) sessions made before the run
#   BASELINE=bare-axum   the baseline of entries that name none
#   REDIS_PORT=6390   first port tried for the bench's own redis-server
#   REDIS_CPU=$WRK_CPU  CPU for that redis-server
#   SKIP_BUILD=1      do not run cargo (use the binaries already built)
#   BUILD_DEMO=0      do not build our demo from the main workspace
#   NICE_BUILD=1      run the cargo builds under `nice -n 19` (the benchmark
#                     itself never runs niced)
#   OUT_DIR=dir       where raw wrk output, server logs, results.tsv and
#                     summary.md go (default: a new directory under /tmp)
#   WRK_BUSY_POLL=1   wrk never sleeps: busy-poll/busy_poll.c (built with cc)
#                     is preloaded into it, so no server response has to
#                     wake wrk's CPU (see "Wake-ups" in README.md). A
#                     diagnostic beside the standard method, not instead of it.
#
# Every run also counts the rescheduling and function-call interrupts
# (IPIs, from /proc/interrupts) that wrk's CPU received, per request: a
# response that finds wrk asleep wakes its CPU with one, and on a virtual
# machine the sender, the server, pays for it in system time. The count
# covers everything on that CPU: with Redis pinned there (the default), the
# server's commands waking redis-server count too. "-" when WRK_CPU is not a
# single CPU number or the machine has no such interrupt lines (not x86).
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
REDIS_CPU=${REDIS_CPU:-$WRK_CPU}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# The bench's own Redis: never one that is already running (another bench,
# a test suite), so FLUSHALL and CONFIG RESETSTAT touch nobody else's data.
REDIS_PORT=${REDIS_PORT:-6390}
for ((i = 0; i < 50; i++)); do
  port_in_use "$REDIS_PORT" || break
  REDIS_PORT=$((REDIS_PORT + 1))
done
REDIS_URL=redis://127.0.0.1:$REDIS_PORT

# A fixed 64-byte key (128 hex chars), so runs are comparable.
# A stand-in for our signed id cookie's value, of the same length.
FAKE_ID=s1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
SECRET=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f

# ---------------------------------------------------------------------------
# The servers: one entry per configuration,
# "name|binary-or-command|env|baseline".
#   binary-or-command: a bare name is a binary of this workspace
#     (benches/load/target/release/NAME); anything with a "/" is a path
#     (relative paths are relative to the repository root); words after the
#     first are arguments.
#   env: space-separated NAME=VALUE pairs (no spaces inside values). PORT is
#     set by this script. Every server must print
#     `listening on http://127.0.0.1:PORT` once ready, and must run ONE
#     worker thread: our binaries here use a tokio current_thread runtime;
#     our demo builds a multi-thread runtime and honours
#     TOKIO_WORKER_THREADS=1 (set below); actix servers use
#     HttpServer::workers(1) (plus actix's accept thread).
#     An entry whose env sets REDIS_URL uses the bench's Redis.
#   baseline: the entry that ratio and Δ µs are relative to (the same
#     framework with no sessions); empty means $BASELINE. A baseline names
#     itself.
# A missing binary is skipped with a note.
SERVERS=(
  "bare-axum|bare-axum||bare-axum"
  # Calibration: bare axum plus a known amount of pure user-space work per
  # request (BENCH_SPIN_NS), to read a library's Δ µs against. Run only when
  # named in ONLY (ONLY=bare-axum,spin-500,spin-1000,...).
  "spin-250|bare-axum|BENCH_SPIN_NS=250|bare-axum"
  "spin-500|bare-axum|BENCH_SPIN_NS=500|bare-axum"
  "spin-1000|bare-axum|BENCH_SPIN_NS=1000|bare-axum"
  "spin-2000|bare-axum|BENCH_SPIN_NS=2000|bare-axum"
  # The same with a cookie as long as our id cookie (69 characters) replayed
  # on every request, as the session servers' cases do.
  "cookie-0|bare-axum|BENCH_COOKIE=$FAKE_ID|bare-axum"
  "cookie-1000|bare-axum|BENCH_SPIN_NS=1000 BENCH_COOKIE=$FAKE_ID|bare-axum"
  # Bare axum doing our demo's handler work (format!, axum::Json) without a
  # session, with our cookie replayed: what a session server's Δ µs holds
  # besides the library (run only when named in ONLY).
  "handler-0|bare-axum|BENCH_HANDLER=demo BENCH_COOKIE=$FAKE_ID|bare-axum"
  "tower-sessions-signed|peer-tower-sessions|SESSION_SECRET=$SECRET|bare-axum"
  # The peer with an unsigned id cookie, as perf-anchors.md measured it
  # (run only when named in ONLY).
  "tower-sessions-plain|peer-tower-sessions|TS_COOKIE=plain|bare-axum"
  # Baseline on the same runtime shape as our demo (multi-thread, 1 worker):
  "bare-axum-mt|bare-axum|BENCH_RUNTIME=multi_thread TOKIO_WORKER_THREADS=1|bare-axum"
  # Our demo on the runtime shape of bare-axum and the tower-sessions peers
  # (current_thread): with tokio's multi-thread scheduler a woken Redis
  # connection task runs right away (the LIFO slot) and flushes one command
  # per write, while on current_thread the commands of many requests go out
  # together. The -mt entries keep the multi-thread shape for comparison.
  "ours-axum-memory|target/release/examples/demo|SESSION_SECRET=$SECRET SESSION_STORE=memory DEMO_RUNTIME=current_thread|bare-axum"
  "ours-axum-memory-mt|target/release/examples/demo|SESSION_SECRET=$SECRET SESSION_STORE=memory TOKIO_WORKER_THREADS=1|bare-axum"
  # Cookie-store mode: the whole session in an AES-256-GCM cookie, no
  # store (perf-anchors.md's target: /views with a session ≤ +2.0 µs).
  "ours-axum-cookie|target/release/examples/demo|SESSION_SECRET=$SECRET SESSION_STORE=cookie DEMO_RUNTIME=current_thread|bare-axum"
  # Sessions in Redis (the bench's own redis-server, see above).
  "ours-axum-redis|target/release/examples/demo|SESSION_SECRET=$SECRET SESSION_STORE=redis REDIS_URL=$REDIS_URL DEMO_RUNTIME=current_thread|bare-axum"
  "ours-axum-redis-mt|target/release/examples/demo|SESSION_SECRET=$SECRET SESSION_STORE=redis REDIS_URL=$REDIS_URL TOKIO_WORKER_THREADS=1|bare-axum"
  "tower-sessions-redis|peer-tower-sessions-redis|SESSION_SECRET=$SECRET REDIS_URL=$REDIS_URL|bare-axum"
  # The same servers built with whole-program optimization (`lto = "fat"`,
  # `codegen-units = 1`, into target/whole-program of each workspace), each
  # against bare axum built alike. Run only when named in ONLY; built
  # (unless SKIP_BUILD=1) when ONLY names one. See "Build profile" in
  # benches/README.md.
  "bare-axum-wp|benches/load/target/whole-program/release/bare-axum||bare-axum-wp"
  "ours-axum-memory-wp|target/whole-program/release/examples/demo|SESSION_SECRET=$SECRET SESSION_STORE=memory DEMO_RUNTIME=current_thread|bare-axum-wp"
  "tower-sessions-plain-wp|benches/load/target/whole-program/release/peer-tower-sessions|TS_COOKIE=plain|bare-axum-wp"
  "tower-sessions-signed-wp|benches/load/target/whole-program/release/peer-tower-sessions|SESSION_SECRET=$SECRET|bare-axum-wp"
  # actix-web, against its own baseline.
  "bare-actix|bare-actix||bare-actix"
  "actix-session-redis|peer-actix-redis|SESSION_SECRET=$SECRET REDIS_URL=$REDIS_URL|bare-actix"
)

# case -> path requested, and whether a session cookie is replayed
case_path() {
  case $1 in
    views-session | views-new | views-many) echo /views ;;
    get-session) echo /get ;;
    *) echo "unknown case: $1" >&2; exit 2 ;;
  esac
}
case_cookie() { [[ $1 != views-new ]]; }

note() { printf '== %s\n' "$*" >&2; }
warn() { printf '!! %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------
# (a) wrk (and redis-server, installed when missing only if a selected
# entry needs it: see below)
apt_install() { # packages...
  local -a sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get install -y "$@" >>"$OUT_DIR/apt.log" 2>&1 \
    || { "${sudo[@]}" apt-get update >>"$OUT_DIR/apt.log" 2>&1 \
         && "${sudo[@]}" apt-get install -y "$@" >>"$OUT_DIR/apt.log" 2>&1; }
}
if ! command -v wrk >/dev/null 2>&1; then
  note "installing wrk"
  apt_install wrk || { warn "could not install wrk, see $OUT_DIR/apt.log"; exit 1; }
fi
for tool in taskset curl getconf; do
  command -v "$tool" >/dev/null 2>&1 || { warn "$tool is required"; exit 1; }
done
declare -a WRK_ENV=()
if [[ ${WRK_BUSY_POLL:-0} == 1 ]]; then
  shim=$OUT_DIR/busy_poll.so
  # LD_PRELOAD splits its list on spaces and colons.
  [[ $shim == *[[:space:]:]* ]] && { warn "WRK_BUSY_POLL=1 needs an OUT_DIR without spaces or colons: $OUT_DIR"; exit 1; }
  cc -O2 -shared -fPIC -o "$shim" "$HERE/busy-poll/busy_poll.c" -ldl \
    || { warn "could not build busy-poll/busy_poll.c (a C compiler, cc, is required)"; exit 1; }
  # The dynamic loader only warns when it cannot preload (a noexec mount,
  # a static binary) and runs the program anyway: refuse to go on without
  # the shim in place.
  preload_err=$(LD_PRELOAD=$shim wrk -v 2>&1 >/dev/null | grep -i 'preload' || true)
  [[ -z $preload_err ]] || { warn "wrk cannot preload $shim: $preload_err"; exit 1; }
  WRK_ENV=(LD_PRELOAD="$shim")
  note "wrk busy-polls (WRK_BUSY_POLL=1): no response has to wake its CPU"
fi

# (b) builds
build() {
  if [[ ${NICE_BUILD:-0} == 1 ]]; then nice -n 19 "$@"; else "$@"; fi
}
# Binaries whose build failed, space-separated: never benchmark a stale one.
FAILED_BINS=" "
# build_servers [wp]: the servers of benches/load, then our demo; with wp,
# the ones the *-wp entries use, with whole-program optimization, into
# target/whole-program of each workspace.
build_servers() {
  local -a load_env=() main_env=() bins=()
  local dir=release what=""
  if [[ ${1:-} == wp ]]; then
    local profile="CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1"
    read -ra load_env <<<"$profile"
    read -ra main_env <<<"$profile"
    load_env+=("CARGO_TARGET_DIR=$HERE/target/whole-program")
    main_env+=("CARGO_TARGET_DIR=$MAIN/target/whole-program")
    bins=(--bin bare-axum --bin peer-tower-sessions)
    dir=whole-program/release what=" with whole-program optimization"
  fi
  note "building the servers of benches/load (release$what)"
  (cd "$HERE" && build env "${load_env[@]}" cargo build --release --quiet "${bins[@]}")
  if [[ ${BUILD_DEMO:-1} != 0 && -f $MAIN/session-axum/examples/demo.rs ]]; then
    note "building our demo (cargo build --release -p session-axum --example demo$what)"
    if ! (cd "$MAIN" && build env "${main_env[@]}" cargo build --release --quiet -p session-axum --example demo); then
      warn "building the demo$what failed: it is skipped"
      FAILED_BINS+="$MAIN/target/$dir/examples/demo "
    fi
  fi
}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  build_servers
  # Every whole-program server alike, when ONLY names one.
  if [[ ,${ONLY:-}, == *-wp,* ]]; then build_servers wp; fi
fi

# ---------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
SERVER_PID=""
REDIS_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
stop_redis() {
  [[ -n $REDIS_PID ]] || return 0
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$REDIS_PID" 2>/dev/null && kill "$REDIS_PID" 2>/dev/null
  REDIS_PID=""
}
trap 'cleanup; stop_redis' EXIT
trap 'exit 130' INT TERM

# "utime stime" (fields 14 and 15) of a process, in clock ticks: where the
# CPU time went (user space: the framework, the library and the app; system:
# the kernel's network stack and scheduler on behalf of the server). The comm
# field may hold spaces, so count fields after its closing parenthesis.
cpu_split() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  # rest starts at field 3 (state): utime is its 12th word, stime its 13th
  awk '{ print $12, $13 }' <<<"$rest"
}
# utime + stime of a process, in clock ticks.
cpu_ticks() { cpu_split "$1" | awk '{ print $1 + $2 }'; }

# Wake-up interrupts received so far by one CPU: rescheduling plus
# function-call IPIs (the two that wake a sleeping task's CPU); "-" when
# $1 is not one CPU number or there are no such lines.
wake_ipis() { # cpu
  [[ $1 =~ ^[0-9]+$ ]] || { echo -; return; }
  awk -v cpu="CPU$1" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == cpu) col = i + 1; next }
    col && ($1 == "RES:" || $1 == "CAL:") { n += $col; rows++ }
    END { if (rows) print n; else print "-" }' /proc/interrupts
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

uses_redis() { [[ " $1" == *" REDIS_URL="* ]]; } # env string

# Calibration servers: bare axum with known extra work, run only when named
# in ONLY, and never expected to set a cookie.
is_calibration() { [[ $1 == spin-* || $1 == cookie-* || $1 == handler-* ]]; } # name
# Servers run only when named in ONLY.
only_when_named() { is_calibration "$1" || [[ $1 == tower-sessions-plain || $1 == *-wp ]]; } # name

# Which entries run: the binary must exist (our demo until it is written).
declare -a RUN=()
NEED_REDIS=0
for entry in "${SERVERS[@]}"; do
  IFS='|' read -r name cmd envs _ <<<"$entry"
  if [[ -n ${ONLY:-} && ",$ONLY," != *",$name,"* ]]; then continue; fi
  if only_when_named "$name" && [[ ",${ONLY:-}," != *",$name,"* ]]; then continue; fi
  full=$(resolve_cmd "$cmd")
  bin=${full%% *}
  if [[ $FAILED_BINS == *" $bin "* ]]; then
    note "skipping $name: its build failed"
    continue
  fi
  if [[ ! -x $bin ]]; then
    if [[ $name == *-wp ]]; then
      note "skipping $name: $bin does not exist yet (run without SKIP_BUILD=1 to build it)"
    else
      note "skipping $name: $bin does not exist yet (build it with: cd $MAIN && cargo build --release -p session-axum --example demo)"
    fi
    continue
  fi
  if uses_redis "$envs"; then
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
      note "installing redis-server (for $name)"
      apt_install redis-server redis-tools || true
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
      note "skipping $name: redis-server/redis-cli are missing (see $OUT_DIR/apt.log)"
      continue
    fi
    NEED_REDIS=1
  fi
  RUN+=("$entry")
done
((${#RUN[@]} > 0)) || { warn "no server to run"; exit 1; }
# A server whose baseline does not run gets no ratio and no Δ µs.
for entry in "${RUN[@]}"; do
  IFS='|' read -r name _ _ baseline <<<"$entry"
  baseline=${baseline:-$BASELINE}
  running=0
  for other in "${RUN[@]}"; do [[ ${other%%|*} == "$baseline" ]] && running=1; done
  ((running)) || warn "$name's baseline, $baseline, does not run (add it to ONLY): its Δ µs will read n/a"
done

if ((NEED_REDIS)); then
  # No persistence; pinned to the wrk CPU, so Redis runs on the other core
  # than the server (perf-anchors.md: "Redis on the other core").
  taskset -c "$REDIS_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save "" --appendonly no --daemonize yes --dir "$OUT_DIR" \
    --pidfile "$OUT_DIR/redis.pid" --logfile "$OUT_DIR/redis.log" \
    || { warn "could not start redis-server on port $REDIS_PORT"; exit 1; }
  for ((i = 0; i < 50; i++)); do
    [[ -s $OUT_DIR/redis.pid ]] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  REDIS_PID=$(<"$OUT_DIR/redis.pid")
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || { warn "redis-server on port $REDIS_PORT does not answer"; exit 1; }
  note "redis-server $(redis-server --version | awk '{ sub(/^v=/, "", $3); print $3 }') on port $REDIS_PORT (pid $REDIS_PID, CPU $REDIS_CPU)"
fi
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# `INFO commandstats` -> "command calls" lines. The harness' own commands
# (INFO, CONFIG RESETSTAT) are left out.
redis_calls() {
  rcli INFO commandstats | tr -d '\r' | awk -F'[_:,=]' '/^cmdstat_/ {
    name = $0; sub(/^cmdstat_/, "", name); sub(/:.*/, "", name)
    calls = $0; sub(/.*:calls=/, "", calls); sub(/,.*/, "", calls)
    if (name != "info" && name != "config|resetstat") print name, calls }'
}

# Commands per request from redis_calls output and wrk's request count:
# "round-trips total breakdown". Commands run by Lua scripts are counted by
# commandstats too; the only script in use here (session-redis' save script,
# SAVE_SCRIPT) runs one GET and at most one SET, so a script run's own
# commands are one GET plus, while SETs remain, one SET. That split is exact
# when the window has no client-sent SET besides the scripts' (views-session:
# every session exists already) and there are no script runs otherwise.
redis_per_request() { # requests < redis_calls output
  awk -v n="$1" '
    { calls[$1] = $2; total += $2 }
    END {
      runs = calls["eval"] + calls["evalsha"] + calls["eval_ro"] + calls["evalsha_ro"]
      inner_get = runs; if (inner_get > calls["get"]) inner_get = calls["get"]
      inner_set = runs; if (inner_set > calls["set"]) inner_set = calls["set"]
      client = total - inner_get - inner_set
      calls["get"] -= inner_get; calls["set"] -= inner_set
      out = ""
      for (c in calls) if (calls[c] > 0) out = out (out == "" ? "" : ",") c ":" calls[c]
      if (out == "") out = "-"
      printf "%.3f\t%.3f\t%s\n", client / n, total / n, out }'
}

RESULTS=$OUT_DIR/results.tsv
printf 'round\tserver\tcase\treq_per_s\tp99_ms\tcpu_us_per_req\trequests\tnon2xx\tredis_rt_per_req\tredis_total_per_req\tredis_client_calls\tredis_cpu_us_per_req\tuser_us_per_req\tsys_us_per_req\twrk_cpu_wakeups_per_req\n' >"$RESULTS"

note "load average before start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes figures noisy)"
note "raw output in $OUT_DIR"

start_seq=0
run_one() { # round name cmd envs baseline case
  local round=$1 name=$2 cmd=$3 envs=$4 baseline=$5 case=$6
  local redis=0
  uses_redis "$envs" && redis=1
  local port=$((PORT_BASE + start_seq % 500))
  start_seq=$((start_seq + 1))
  local tag="r$round-$name-$case"
  local log=$OUT_DIR/$tag.server.log
  local -a envv cmdv
  read -ra envv <<<"$envs"
  read -ra cmdv <<<"$(resolve_cmd "$cmd")"

  # Every server starts on an empty Redis.
  [[ -n $REDIS_PID ]] && { rcli FLUSHALL >/dev/null || warn "FLUSHALL failed"; }
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
    # (The bare servers set no cookie.)
    if [[ -z $cookie && $name != "$baseline" && $name != bare-* ]] && ! is_calibration "$name"; then
      warn "$name: no Set-Cookie on the first GET /views"
    fi
  fi
  local -a hdr=() lua=()
  [[ -n $cookie ]] && hdr=(-H "Cookie: $cookie")
  if [[ $case == views-many ]]; then
    # Many sessions, each request the next one's cookie in turn: /views as
    # a real site sees it, where requests of one session rarely overlap
    # (views-session replays ONE cookie on every connection, so all its
    # writes are to one session at once).
    local script=$OUT_DIR/$tag.lua n
    {
      echo "local cookies = {"
      for ((n = 0; n < ${MANY_SESSIONS:-256}; n++)); do
        curl -sS -D - -o /dev/null "$base/views" | tr -d '\r' \
          | awk 'tolower($1) == "set-cookie:" { sub(/^[^:]*:[ ]*/, ""); split($0, a, ";"); printf "  \"%s\",\n", a[1]; exit }'
      done
      echo "}"
      echo "local i = 0"
      echo "request = function()"
      echo "  i = i + 1"
      echo "  local c = cookies[(i % #cookies) + 1]"
      echo "  if c then return wrk.format(\"GET\", \"/views\", { [\"Cookie\"] = c }) end"
      echo "  return wrk.format(\"GET\", \"/views\")"
      echo "end"
    } >"$script"
    lua=(-s "$script")
  fi
  # Sanity: the route answers 200 (and show the body in the log).
  local status
  status=$(curl -sS "${hdr[@]}" -o "$OUT_DIR/$tag.body" -w '%{http_code}' "$base$path")
  if [[ $status != 200 ]]; then
    warn "$name $case: GET $path answered $status ($(head -c 200 "$OUT_DIR/$tag.body"))"
  fi

  local t0 t1 r0=0 r1=0 out=$OUT_DIR/$tag.wrk
  ((redis)) && { rcli CONFIG RESETSTAT >/dev/null; r0=$(cpu_ticks "$REDIS_PID"); }
  t0=$(cpu_split "$SERVER_PID")
  local w0 w1
  w0=$(wake_ipis "$WRK_CPU")
  env "${WRK_ENV[@]}" taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${hdr[@]}" "${lua[@]}" "$base$path" >"$out" 2>&1
  t1=$(cpu_split "$SERVER_PID")
  w1=$(wake_ipis "$WRK_CPU")
  ((redis)) && { r1=$(cpu_ticks "$REDIS_PID"); redis_calls >"$OUT_DIR/$tag.redis"; }
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
  local user_us sys_us
  read -r cpu_us user_us sys_us < <(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$requests" \
    'BEGIN { split(a, x, " "); split(b, y, " "); u = (y[1] - x[1]) * 1e6 / hz / n; s = (y[2] - x[2]) * 1e6 / hz / n
      printf "%.3f %.3f %.3f\n", u + s, u, s }')
  local rstats=$'-\t-\t-' rcpu=- rnote=""
  if ((redis)); then
    rstats=$(redis_per_request "$requests" <"$OUT_DIR/$tag.redis")
    rcpu=$(awk -v a="$r0" -v b="$r1" -v hz="$CLK_TCK" -v n="$requests" \
      'BEGIN { printf "%.3f", (b - a) * 1e6 / hz / n }')
    rnote=", Redis $(cut -f1 <<<"$rstats") round trips/req ($(cut -f2 <<<"$rstats") commands), Redis CPU $rcpu µs/req"
  fi
  local wakeups
  wakeups=$(awk -v a="$w0" -v b="$w1" -v n="$requests" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f", (b - a) / n }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$case" "$rps" "$(to_ms "$p99")" \
    "$cpu_us" "$requests" "$non2xx" "$rstats" "$rcpu" "$user_us" "$sys_us" "$wakeups" >>"$RESULTS"
  note "round $round  $name  $case: $rps req/s, p99 $p99, $cpu_us µs CPU/req (user $user_us, system $sys_us), $wakeups wake-ups of wrk's CPU/req$rnote"
}

for ((round = 1; round <= ROUNDS; round++)); do
  for case in "${CASE_LIST[@]}"; do
    for entry in "${RUN[@]}"; do
      IFS='|' read -r name cmd envs baseline <<<"$entry"
      run_one "$round" "$name" "$cmd" "$envs" "${baseline:-$BASELINE}" "$case" \
        || warn "run failed: round $round $name $case"
    done
  done
done

# ---------------------------------------------------------------------------
# Medians per (server, case), relative to each entry's baseline.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { # server case column -> median ("-" when the column is empty)
  local v
  v=$(awk -F'\t' -v s="$1" -v c="$2" -v k="$3" 'NR > 1 && $2 == s && $3 == c && $k != "-" { print $k }' "$RESULTS")
  if [[ -n $v ]]; then median <<<"$v"; elif (($3 >= 9)); then echo "-"; else echo nan; fi
}
# Δ µs paired by round: the median over rounds of (this run's CPU µs/req
# minus its baseline's in the same round, run moments before). On a machine
# whose speed drifts, pairing cancels most of the drift that a difference
# of two medians keeps.
paired_delta() { # server baseline case
  awk -F'\t' -v s="$1" -v b="$2" -v c="$3" 'NR > 1 && $3 == c && ($2 == s || $2 == b) { cpu[$1, $2] = $6; r[$1] = 1 }
    END { for (k in r) if ((k, s) in cpu && (k, b) in cpu) print cpu[k, s] - cpu[k, b] }' "$RESULTS" | median
}
# Difference of the medians of one column, server minus baseline ("n/a"
# when either has none: col gives "-" for an empty column from 9 on).
median_delta() { # server baseline case column
  awk -v a="$(col "$1" "$3" "$4")" -v b="$(col "$2" "$3" "$4")" \
    'BEGIN { if (a == "nan" || b == "nan" || a == "-" || b == "-") print "n/a"; else printf "%+.2f", a - b }'
}
# The lowest CPU µs/req over rounds: interference only ever adds time.
colmin() { awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $2 == s && $3 == c { if (m == "" || $6 < m) m = $6 } END { print (m == "" ? "nan" : m) }' "$RESULTS"; }
nrounds() { awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $2 == s && $3 == c' "$RESULTS" | wc -l; }
colsum() { awk -F'\t' -v s="$1" -v c="$2" -v k="$3" 'NR > 1 && $2 == s && $3 == c { t += $k } END { print t + 0 }' "$RESULTS"; }
# Client-sent Redis commands per request, by command, over all rounds.
breakdown() { # server case
  awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $2 == s && $3 == c && $11 != "-" {
      n += $7; k = split($11, kv, ",")
      for (i = 1; i <= k; i++) { split(kv[i], p, ":"); calls[p[1]] += p[2] } }
    END {
      out = ""
      for (cmd in calls) out = out (out == "" ? "" : ", ") sprintf("%s %.2f", cmd, calls[cmd] / n)
      print (out == "" ? "-" : out) }' "$RESULTS"
}

SUMMARY=$OUT_DIR/summary.md
{
  echo "Load benchmark, $(date -u +%Y-%m-%dT%H:%MZ): medians over rounds; wrk -t1 -c$CONNECTIONS -d${DURATION}s on CPU $WRK_CPU, server on CPU $SERVER_CPU; ratio and Δ µs against each server's baseline (same framework, constant bodies).${WRK_ENV[*]:+ wrk busy-polls (WRK_BUSY_POLL=1).}${REDIS_PID:+ Redis $(redis-server --version | awk '{ sub(/^v=/, "", $3); print $3 }') on CPU $REDIS_CPU.}"
  echo
  echo "| server | case | rounds | req/s | p99 (ms) | CPU µs/req | baseline | ratio | Δ µs | Δ µs paired | Δ µs of minima | Δ user µs | Δ system µs | wake-ups of wrk's CPU/req | non-2xx | Redis round trips/req | Redis commands/req (incl. in scripts) | client-sent commands/req | Redis CPU µs/req |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for case in "${CASE_LIST[@]}"; do
    for entry in "${RUN[@]}"; do
      IFS='|' read -r name _ _ baseline <<<"$entry"
      baseline=${baseline:-$BASELINE}
      n=$(nrounds "$name" "$case")
      ((n > 0)) || continue
      base_rps=$(col "$baseline" "$case" 4)
      base_cpu=$(col "$baseline" "$case" 6)
      rps=$(col "$name" "$case" 4)
      p99=$(col "$name" "$case" 5)
      cpu=$(col "$name" "$case" 6)
      non2xx=$(colsum "$name" "$case" 8)
      rt=$(col "$name" "$case" 9)
      tot=$(col "$name" "$case" 10)
      bd=$(breakdown "$name" "$case")
      rcpu=$(col "$name" "$case" 12)
      pdelta=$(paired_delta "$name" "$baseline" "$case")
      du=$(median_delta "$name" "$baseline" "$case" 13)
      ds=$(median_delta "$name" "$baseline" "$case" 14)
      wake=$(col "$name" "$case" 15)
      mdelta=$(awk -v a="$(colmin "$name" "$case")" -v b="$(colmin "$baseline" "$case")" 'BEGIN { if (a == "nan" || b == "nan") print "nan"; else print a - b }')
      awk -v name="$name" -v c="$case" -v n="$n" -v rps="$rps" -v p99="$p99" -v cpu="$cpu" \
        -v pdelta="$pdelta" -v mdelta="$mdelta" -v du="$du" -v ds="$ds" -v wake="$wake" \
        -v base="$baseline" -v brps="$base_rps" -v bcpu="$base_cpu" -v non2xx="$non2xx" \
        -v rt="$rt" -v tot="$tot" -v bd="$bd" -v rcpu="$rcpu" 'BEGIN {
          ratio = (brps == "nan" || brps == 0) ? "n/a" : sprintf("%.2f", rps / brps)
          delta = (bcpu == "nan" || cpu == "nan") ? "n/a" : sprintf("%+.2f", cpu - bcpu)
          rt = (rt == "-") ? "–" : sprintf("%.2f", rt)
          tot = (tot == "-") ? "–" : sprintf("%.2f", tot)
          bd = (bd == "-") ? "–" : bd
          rcpu = (rcpu == "-") ? "–" : sprintf("%.2f", rcpu)
          pdelta = (pdelta == "nan") ? "n/a" : sprintf("%+.2f", pdelta)
          mdelta = (mdelta == "nan") ? "n/a" : sprintf("%+.2f", mdelta)
          wake = (wake == "-" || wake == "nan") ? "n/a" : sprintf("%.3f", wake)
          printf "| %s | %s | %d | %.0f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n",
            name, c, n, rps, p99, cpu, base, ratio, delta, pdelta, mdelta, du, ds, wake, non2xx, rt, tot, bd, rcpu }'
    done
  done
  # Against the calibration, when the run has one: `spin-N` is its baseline
  # plus N ns of pure computation per request, so its paired Δ reads N ns
  # when the harness charges a microsecond as a microsecond. Each server
  # sharing that baseline is shown again with its paired Δ scaled by what
  # the calibration should read over what it read, case by case. A lens
  # beside the table, not instead of it: the targets are read on the table.
  cal=""
  for entry in "${RUN[@]}"; do
    IFS='|' read -r name _ _ baseline <<<"$entry"
    if [[ $name =~ ^spin-([0-9]+)$ ]]; then
      cal=$name cal_ns=${BASH_REMATCH[1]} cal_base=${baseline:-$BASELINE}
      break
    fi
  done
  if [[ -n $cal ]]; then
    echo
    echo "Against the calibration: $cal reads +$(awk -v n="$cal_ns" 'BEGIN { printf "%.2f", n / 1000 }') µs when the harness is exact; each paired Δ scaled by that over what $cal read in the case."
    echo
    echo "| server | case | Δ µs paired | $cal's Δ µs paired | Δ µs at the calibration |"
    echo "| --- | --- | --- | --- | --- |"
    for case in "${CASE_LIST[@]}"; do
      ((cal_n = $(nrounds "$cal" "$case"))) || true
      ((cal_n > 0)) || continue
      cal_delta=$(paired_delta "$cal" "$cal_base" "$case")
      for entry in "${RUN[@]}"; do
        IFS='|' read -r name _ _ baseline <<<"$entry"
        [[ ${baseline:-$BASELINE} == "$cal_base" && $name != "$cal_base" && $name != "$cal" ]] || continue
        (($(nrounds "$name" "$case") > 0)) || continue
        awk -v name="$name" -v c="$case" -v p="$(paired_delta "$name" "$cal_base" "$case")" \
          -v k="$cal_delta" -v ns="$cal_ns" 'BEGIN {
            scaled = (p == "nan" || k == "nan" || k < 0.2 * ns / 1000) ? "n/a" : sprintf("%+.2f", p * ns / 1000 / k)
            printf "| %s | %s | %s | %s | %s |\n", name, c, (p == "nan" ? "n/a" : sprintf("%+.2f", p)),
              (k == "nan" ? "n/a" : sprintf("%+.2f", k)), scaled }'
      done
    done
  fi
} >"$SUMMARY"
echo
cat "$SUMMARY"
echo
note "per-run figures: $RESULTS"
