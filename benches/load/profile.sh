#!/usr/bin/env bash
# Where two servers' time goes under load, function by function: each is
# run pinned to SERVER_CPU under `wrk -t1 -c32` (pinned to WRK_CPU) for
# SECS seconds while `perf record -e cpu-clock` samples it, one after the
# other; the report gives each function's µs per request (samples × sample
# period / requests wrk completed while perf ran) for A and for B, sorted by
# the difference. Whole-program totals and a per-crate summary come first.
#
# Sequential runs share less of the machine's drift than alternate.sh's
# windows: read the totals from alternate.sh, and this report for *where*
# a difference lies.
#
#   bash benches/load/profile.sh views-new benches/load/target/release/bare-axum target/release/examples/demo
#   SECS=20 TOP=60 bash benches/load/profile.sh get-session /tmp/demo-old target/release/examples/demo
#
# CASE: views-session, views-new or get-session. A and B: server
# executables that follow the demo contract (the demo, bare-axum or any
# other build of them). Environment: SECS (12), TOP (40), FREQ (4999),
# SERVER_CPU (0), WRK_CPU (1), PORT (3990).
# Needs perf, wrk, curl and python3.
set -euo pipefail

[[ $# -eq 3 ]] || { sed -n '2,20p' "$0" >&2; exit 2; }
CASE=$1
SECS=${SECS:-12}
TOP=${TOP:-40}
FREQ=${FREQ:-4999}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
PORT=${PORT:-3990}
case $CASE in
  views-session | views-new) path=/views ;;
  get-session) path=/get ;;
  *) echo "unknown case $CASE (views-session, views-new, get-session)" >&2; exit 2 ;;
esac
for tool in perf wrk curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is needed" >&2; exit 1; }
done
OUT=$(mktemp -d "${TMPDIR:-/tmp}/profile.XXXXXX")
SERVER=
cleanup() { [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
SECRET=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')

# profile LABEL EXECUTABLE: one run; leaves $OUT/LABEL.txt and $OUT/LABEL.reqs.
profile() {
  local label=$1 exe=$2 i cookie=() reqs
  [[ -x $exe ]] || { echo "$exe is not an executable" >&2; exit 1; }
  DEMO_RUNTIME=current_thread SESSION_SECRET=$SECRET SESSION_STORE=memory PORT=$PORT \
    taskset -c "$SERVER_CPU" "$exe" >"$OUT/$label.log" 2>&1 &
  SERVER=$!
  for ((i = 0; i < 100; i++)); do
    grep -qx "listening on http://127.0.0.1:$PORT" "$OUT/$label.log" && break
    sleep 0.1
  done
  grep -qx "listening on http://127.0.0.1:$PORT" "$OUT/$label.log" \
    || { echo "$exe did not start:" >&2; cat "$OUT/$label.log" >&2; exit 1; }
  if [[ $CASE != views-new ]]; then
    local c
    c=$(curl -sS -D - -o /dev/null "http://127.0.0.1:$PORT/views" | tr -d '\r' \
      | awk 'tolower($1) == "set-cookie:" { sub(/^[^:]*:[ ]*/, ""); split($0, a, ";"); print a[1]; exit }')
    [[ -n $c ]] && cookie=(-H "Cookie: $c")
  fi
  # wrk runs a little longer than perf, which starts after a warm-up.
  taskset -c "$WRK_CPU" wrk -t1 -c32 -d"$((SECS + 4))s" "${cookie[@]}" \
    "http://127.0.0.1:$PORT$path" >"$OUT/$label.wrk" 2>&1 &
  local wrk=$!
  sleep 2
  perf record -F "$FREQ" -e cpu-clock -p "$SERVER" -o "$OUT/$label.data" -- sleep "$SECS" \
    >"$OUT/$label.perf.log" 2>&1 \
    || { echo "perf record failed (perf_event_paranoid?):" >&2; cat "$OUT/$label.perf.log" >&2; exit 1; }
  wait "$wrk"
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  reqs=$(awk '/Requests\/sec/ { print $2 }' "$OUT/$label.wrk")
  [[ -n $reqs ]] || { echo "wrk failed:" >&2; cat "$OUT/$label.wrk" >&2; exit 1; }
  # Requests completed while perf ran: the rate times perf's duration.
  awk -v r="$reqs" -v s="$SECS" 'BEGIN { print r * s }' >"$OUT/$label.reqs"
  perf report -i "$OUT/$label.data" --no-children --sort dso,symbol --stdio -g none \
    -F sample,dso,sym -t $'\t' 2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/$label.txt"
  echo "$label: $exe, $reqs requests/s" >&2
}

profile A "$2"
profile B "$3"

python3 - "$OUT" "$FREQ" "$TOP" "$CASE" <<'PY'
import collections, re, sys

out, freq, top, case = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def load(label):
    reqs = float(open(f"{out}/{label}.reqs").read())
    per = collections.Counter()
    for line in open(f"{out}/{label}.txt"):
        parts = [p.strip() for p in line.rstrip("\n").split("\t")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        samples, dso, sym = int(parts[0]), parts[1], parts[2]
        # The two executables have different names: call both "exe".
        dso = dso if dso.startswith(("[", "lib")) else "exe"
        sym = re.sub(r"::h[0-9a-f]{16}", "", sym)
        per[f"{dso} {sym}"] += samples * 1e6 / freq / reqs
    return per

def crate(name):
    dso, _, sym = name.partition(" ")
    if dso != "exe":
        return "kernel" if "kernel" in dso else dso
    for c in ("session_core", "session_axum", "hyper", "tokio", "axum", "http::", "btree", "hashbrown"):
        if c in sym:
            return c.rstrip(":")
    return "exe, other"

a, b = load("A"), load("B")
print(f"{case}: µs per request, perf cpu-clock samples (A then B, one run each)")
print()
print(f"| | A | B | B − A |")
print(f"| --- | --- | --- | --- |")
print(f"| total | {sum(a.values()):.2f} | {sum(b.values()):.2f} | {sum(b.values()) - sum(a.values()):+.2f} |")
ca, cb = collections.Counter(), collections.Counter()
for k, v in a.items():
    ca[crate(k)] += v
for k, v in b.items():
    cb[crate(k)] += v
for c in sorted(set(ca) | set(cb), key=lambda c: -abs(cb[c] - ca[c])):
    print(f"| {c} | {ca[c]:.3f} | {cb[c]:.3f} | {cb[c] - ca[c]:+.3f} |")
print()
print(f"| function | A | B | B − A |")
print(f"| --- | --- | --- | --- |")
for k in sorted(set(a) | set(b), key=lambda k: -abs(b[k] - a[k]))[:top]:
    print(f"| {k[:110]} | {a[k]:.3f} | {b[k]:.3f} | {b[k] - a[k]:+.3f} |")
PY
