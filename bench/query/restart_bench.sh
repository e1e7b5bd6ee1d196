#!/usr/bin/env bash
# restart_bench.sh: how long a cohortd restart takes until the first answer,
# and what the process holds in memory (issue 13). Runs the cohortd binary
# on an existing store (e.g. one filled by `cohortctl simulate`), RUNS
# times, and prints per run:
#   - wall time from exec to the first answered Aggregate (query_load
#     --first-answer-since), and cohortd's CPU time (user+sys) by then
#     (all its threads: the background checksum pass and index rebuild
#     included), and when the log said "serving gRPC";
#   - VmRSS / VmHWM at the first answer, after the background rebuild
#     (SETTLE seconds later), and after QUERIES distinct queries and their
#     cache hits (query_load), with the growth per query.
#
#   bench/query/restart_bench.sh CONFIG [RUNS] [QUERIES] [SETTLE]
#
# CONFIG must listen on a fixed port (server.listen) and name the store;
# tokens come from $COHORTD_ANALYST_TOKEN (e.g. `source
# secrets/dev-tokens.env`); the analyst needs budget for RUNS * QUERIES
# releases. Binaries from $BUILD (default build/).
set -euo pipefail
CONFIG=${1:?usage: restart_bench.sh CONFIG [RUNS] [QUERIES] [SETTLE]}
RUNS=${2:-3}
QUERIES=${3:-50}
SETTLE=${4:-8}
BUILD=${BUILD:-build}
COHORTD=$BUILD/server/cohortd
QUERY_LOAD=$BUILD/bench/query/query_load
: "${COHORTD_ANALYST_TOKEN:?export COHORTD_ANALYST_TOKEN (secrets/dev-tokens.env)}"
export COHORTD_ANALYST_TOKEN

TARGET=$(sed -n 's/^ *listen: *\([0-9.:]*\) *$/\1/p' "$CONFIG" | head -1)
[ -n "$TARGET" ] || { echo "no server.listen in $CONFIG" >&2; exit 2; }
TICKS=$(getconf CLK_TCK)
LOG=$(mktemp)
pid=
# Never leave a server behind, whatever failed.
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid"; rm -f "$LOG"' EXIT

cpu_seconds() {  # utime + stime of $1, in seconds
  awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"
}
rss() {  # "VmRSS MiB / VmHWM MiB" of $1
  awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 }
       END { printf "%.1f MiB (peak %.1f MiB)", r / 1024, h / 1024 }' \
    "/proc/$1/status"
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

for run in $(seq 1 "$RUNS"); do
  start=$(date +%s%N)
  "$COHORTD" --config "$CONFIG" >"$LOG" 2>&1 &
  pid=$!
  first=$("$QUERY_LOAD" --target "$TARGET" --first-answer-since "$start")
  cpu=$(cpu_seconds $pid)
  serving=$(date -d "$(grep -m1 'serving gRPC' "$LOG" | cut -d' ' -f1)" +%s%N)
  echo "run $run: $first; cohortd CPU $cpu s; RSS $(rss $pid)"
  echo "  serving (log line) $(awk -v a="$serving" -v b="$start" \
    'BEGIN { printf "%.3f", (a - b) / 1e9 }') s after start"
  sleep "$SETTLE"
  echo "  after ${SETTLE} s (background rebuild done): CPU $(cpu_seconds $pid) s; RSS $(rss $pid)"
  before=$(rss_kib $pid)
  "$QUERY_LOAD" --target "$TARGET" --queries "$QUERIES" \
    --epsilon "1.$(printf %02d $((RANDOM % 90)))" | sed 's/^/  /'
  after=$(rss_kib $pid)
  echo "  after $QUERIES misses + $QUERIES hits: RSS $(rss $pid);" \
    "$(awk -v a="$after" -v b="$before" -v q="$QUERIES" \
      'BEGIN { printf "%+.1f KiB per query (miss+hit)", (a - b) / q }')"
  grep -E "opening store|restored sealed snapshot|image read|loaded from the store|verified the checksums|serving gRPC" \
    "$LOG" | cut -c1-200 | sed 's/^/  log: /'
  kill -TERM $pid
  wait $pid || true
  pid=
done
