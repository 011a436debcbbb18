#!/usr/bin/env bash
# How many distinct cache lines of code and of data one request touches, in
# process, for bare axum and our demo: the footprint that a server's caches
# must hold (or fetch again) for every request. Under load the kernel's
# network stack runs between two requests and evicts much of the first- and
# second-level caches, so a request pays for its footprint more than for its
# instruction count (see "Session 9" in benches/HISTORY.md).
#
# Traces the adapter bench's `--count CASE 6` mode with valgrind's lackey
# (every instruction fetch and data access), cuts the trace at the entries
# to `adapter::call` (the set-up request, the bench's warm-up request, then
# six counted ones) and reports what runs from the sixth entry to the
# seventh: the fourth counted request, after four warm-ups. One iteration includes building the request,
# dropping the response and the bench's two clock reads around the call,
# the same for both apps.
#
#   bash benches/footprint.sh                      # all cases
#   CASES=views-session bash benches/footprint.sh
#   TOP=40 bash benches/footprint.sh               # also the functions whose
#                                                  # code lines differ most
#                                                  # from bare axum's
#
# Environment: CASES (get-session,views-session,views-new), TOP (0).
# Needs valgrind and python3; about 15 s per case and app.
set -euo pipefail

MAIN=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IFS=, read -ra CASE_LIST <<<"${CASES:-get-session,views-session,views-new}"
TOP=${TOP:-0}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/footprint.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

command -v valgrind >/dev/null 2>&1 || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "python3 is needed" >&2; exit 1; }

echo "building the adapter bench (cargo bench -p session-axum --bench adapter --no-run)" >&2
BENCH=$(cd "$MAIN" && cargo bench -p session-axum --bench adapter --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep '/adapter-' | tail -1 || true)
[[ -x $BENCH ]] || { echo "no adapter bench executable found (run cargo bench -p session-axum --bench adapter --no-run to see why)" >&2; exit 1; }

# valgrind loads a position-independent executable at this address.
LOAD_BASE=0x108000
nm -n --defined-only "$BENCH" | awk '$2 ~ /^[tTwW]$/ {print $1, $3}' >"$OUT/syms"
CALL=$(awk '$2 ~ /7adapter4call17h/ {print $1}' "$OUT/syms" | tail -1)
[[ -n $CALL ]] || { echo "adapter::call not found in $BENCH" >&2; exit 1; }
nm -n -C --defined-only "$BENCH" | awk '$2 ~ /^[tTwW]$/' >"$OUT/names"

echo
echo "Per request, in process (valgrind lackey; the fourth counted request of a run):"
echo
echo "| case | app | instructions | code lines | data lines |"
echo "| --- | --- | --- | --- | --- |"
for case in "${CASE_LIST[@]}"; do
  for app in bare ours; do
    valgrind --tool=lackey --trace-mem=yes --log-file="$OUT/trace" \
      "$BENCH" --count "$app/$case" 6 >/dev/null 2>&1 \
      || { echo "valgrind failed on $app/$case" >&2; exit 1; }
    python3 - "$OUT/trace" "$CALL" "$LOAD_BASE" "$OUT/names" "$case" "$app" "$TOP" <<'PY'
import bisect, collections, re, sys

trace, call, base, names, case, app, top = sys.argv[1:]
call = int(call, 16) + int(base, 16)
base = int(base, 16)
top = int(top)
code, data, fetched = set(), set(), []
calls = 0
for line in open(trace):
    kind = line[:2]
    if kind == "I ":
        addr, size = line[3:].split(",")
        addr, size = int(addr, 16), int(size)
        if addr == call:
            calls += 1
        if calls == 6:
            code.update((addr >> 6, (addr + size - 1) >> 6))
            fetched.append(addr)
    elif calls == 6 and kind in (" L", " S", " M"):
        addr, size = line[3:].split(",")
        addr, size = int(addr, 16), int(size)
        data.update((addr >> 6, (addr + size - 1) >> 6))
if calls < 7:
    sys.exit(f"{app}/{case}: adapter::call entered {calls} times, expected 8 (set-up, warm-up and six counted)")
print(f"| {case} | {app} | {len(fetched):,} | {len(code)} | {len(data)} |")
if top:
    syms = []
    for line in open(names):
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) == 3:
            syms.append((int(parts[0], 16) + base, re.sub(r"::h[0-9a-f]{16}$", "", parts[2])))
    syms.sort()
    starts = [s for s, _ in syms]
    per = collections.defaultdict(set)
    for addr in fetched:
        i = bisect.bisect_right(starts, addr) - 1
        name = syms[i][1] if i >= 0 and addr - starts[i] < 1 << 20 else "(shared libraries)"
        per[name].add(addr >> 6)
    with open(f"{trace}.{app}.per", "w") as out:
        for name, lines in per.items():
            out.write(f"{len(lines)}\t{name}\n")
    if app == "ours":
        bare = {}
        for line in open(f"{trace}.bare.per"):
            n, name = line.rstrip("\n").split("\t", 1)
            bare[name] = int(n)
        diff = {name: len(lines) - bare.get(name, 0) for name, lines in per.items()}
        for name, n in bare.items():
            diff.setdefault(name, -n)
        ranked = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top]
        print("|   | lines, ours − bare | function | | |")
        for name, n in ranked:
            print(f"|   | {n:+d} | {name[:120]} | | |")
PY
  done
done
