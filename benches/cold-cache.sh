#!/usr/bin/env bash
# Instructions and cache misses per request of the adapter in process, hot
# and cold, for bare axum and our demo: noise-free figures to optimize
# against (the load harness is the final word, but moves by a microsecond
# between runs on this machine).
#
# Runs the adapter bench's `--count CASE N [--pollute KB]` mode under
# `valgrind --tool=callgrind --cache-sim=yes` with the machine's first-level
# caches and its second-level cache as the last simulated level, and reads
# the inclusive cost of `adapter::call` (one request through the router;
# the pollution loop is outside it). A run with N = 0 is subtracted, which
# removes the set-up request that makes the session cookie and the bench's
# warm-up request (one-time set-up such as the verified-cookie cache's
# table).
#
#   bash benches/cold-cache.sh                 # all cases, about 2 minutes
#   CASES=get-session bash benches/cold-cache.sh
#   APPS=bare,ours,cookie bash benches/cold-cache.sh   # cookie-store mode too
#
# Environment: CASES (get-session,views-session,views-new), APPS (bare,ours;
# cookie is the demo in cookie-store mode), N (1000 requests
# per run), POLLUTE_KB (2048: written between two requests in the cold runs,
# more than the second-level cache), L1 and L2 (valgrind cache geometries,
# default 32768,8,64 and 524288,8,64: this machine's; see `lscpu`).
set -euo pipefail

MAIN=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IFS=, read -ra CASE_LIST <<<"${CASES:-get-session,views-session,views-new}"
IFS=, read -ra APP_LIST <<<"${APPS:-bare,ours}"
N=${N:-1000}
POLLUTE_KB=${POLLUTE_KB:-2048}
L1=${L1:-32768,8,64}
L2=${L2:-524288,8,64}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/cold-cache.XXXXXX")

if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_annotate >/dev/null 2>&1; then
  echo "installing valgrind" >&2
  sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get install -y valgrind >"$OUT/apt.log" 2>&1 \
    || { "${sudo[@]}" apt-get update >>"$OUT/apt.log" 2>&1 && "${sudo[@]}" apt-get install -y valgrind >>"$OUT/apt.log" 2>&1; } \
    || { echo "could not install valgrind, see $OUT/apt.log" >&2; exit 1; }
fi

echo "building the adapter bench (cargo bench -p session-axum --bench adapter --no-run)" >&2
BENCH=$(cd "$MAIN" && cargo bench -p session-axum --bench adapter --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep '/adapter-' | tail -1)
[[ -x $BENCH ]] || { echo "no adapter bench executable found" >&2; exit 1; }

# The inclusive events of adapter::call for one run, as
# "Ir I1mr D1mr D1mw ILmr DLmr DLmw" (0s when it was never called).
measure() { # app/case n pollute_kb
  local file=$OUT/cg.${1//\//_}.$2.$3
  valgrind --tool=callgrind --cache-sim=yes --I1="$L1" --D1="$L1" --LL="$L2" \
    --callgrind-out-file="$file" "$BENCH" --count "$1" "$2" --pollute "$3" >/dev/null 2>&1 \
    || { echo "valgrind failed on $1 (see $file)" >&2; exit 1; }
  callgrind_annotate --inclusive=yes --threshold=100 --show=Ir,I1mr,D1mr,D1mw,ILmr,DLmr,DLmw "$file" \
    | awk '/:adapter::call \[/ { gsub(/\([^)]*\)/, ""); gsub(/,/, ""); if (!found) print $1, $2, $3, $4, $5, $6, $7; found = 1 }
      END { if (!found) print 0, 0, 0, 0, 0, 0, 0 }'
}

# Per request: (run with N) minus (run with 0), over N.
per_request() { # app/case pollute_kb -> "Ir I1mr D1m ILmr DLm"
  local a b
  a=$(measure "$1" "$N" "$2")
  b=$(measure "$1" 0 "$2")
  awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN { split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= 7; i++) d[i] = (x[i] - y[i]) / n
    printf "%.0f %.0f %.0f %.0f %.0f\n", d[1], d[2], d[3] + d[4], d[5], d[6] + d[7] }'
}

echo
echo "Per request, in process (callgrind; L1 $L1, last level $L2; $N requests; cold = ${POLLUTE_KB} KB written between requests):"
echo
echo "| case | app | instructions | L1i misses, hot | L1d misses, hot | code lines from beyond L2, cold | data lines from beyond L2, cold |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for case in "${CASE_LIST[@]}"; do
  for app in "${APP_LIST[@]}"; do
    read -r ir i1 d1 _ _ < <(per_request "$app/$case" 0)
    read -r _ _ _ ilc dlc < <(per_request "$app/$case" "$POLLUTE_KB")
    echo "| $case | $app | $ir | $i1 | $d1 | $ilc | $dlc |"
  done
done
echo
echo "Under valgrind, SHA-256 runs in software (no SHA extensions): a new session's three blocks are about 10,500 of its instructions and 176 of its code lines, where the CPU runs a short loop. A request whose cookie the engine verified before (get-session, views-session) runs none. Raw files: $OUT" >&2
