#!/usr/bin/env bash
# Server CPU per observation by thread name under ingest_load (issue 13
# item 3: which threads spend the server's time). Starts its own cohortd
# (config/dev.yaml, fresh temp data dir, port 0), snapshots
# /proc/PID/task/*/stat before and after one ingest_load run, and prints
# for each thread name (comm: gRPC's sync-server threads, the committer,
# RocksDB's rocksdb:high flush and rocksdb:low compaction threads, ...)
# the user+system CPU per observation, plus the store's size on disk.
# CPU of threads that exited during the run is counted only in the
# process total ("exited threads").
#
#   bench/ingest/thread_cpu.sh [--observations N] [--streams M]
#                              [--batch B] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

OBSERVATIONS=1000000
STREAMS=4
BATCH=2000
BUILD_DIR="${BUILD_DIR:-build}"
while [ $# -gt 0 ]; do
  case "$1" in
    --observations) OBSERVATIONS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "thread_cpu: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
COHORTD="$BUILD_DIR/server/cohortd"
LOAD="$BUILD_DIR/bench/ingest/ingest_load"
for binary in "$COHORTD" "$LOAD"; do
  [ -x "$binary" ] || { echo "thread_cpu: $binary is not built" >&2; exit 1; }
done
scripts/dev-secrets >/dev/null
# shellcheck disable=SC1091
set -a; . secrets/dev-tokens.env; set +a

TMP=$(mktemp -d /tmp/cohortd-thread-cpu.XXXXXX)
# shellcheck source=bench/lib/cohortd_server.sh
. bench/lib/cohortd_server.sh
trap 'cohortd_stop; rm -rf "$TMP"' EXIT
cohortd_config
cohortd_start load "$TMP/store"

# Each live thread's "TID NAME TICKS" (thread_ticks), then the process
# total as "total process TICKS".
snapshot() {
  thread_ticks "$SERVER_PID"
  echo "total process $(cpu_ticks "$SERVER_PID")"
}
snapshot >"$TMP/before"
"$LOAD" --target "127.0.0.1:$PORT" --observations "$OBSERVATIONS" \
  --streams "$STREAMS" --batch "$BATCH" | tail -4
sleep 2  # let the last flush and compaction finish
snapshot >"$TMP/after"
du -sk "$TMP/store" | awk '{printf "store on disk: %.1f MiB\n", $1 / 1024}'
awk -v n="$OBSERVATIONS" -v hz="$(getconf CLK_TCK)" '
  FNR == NR { before[$1] = $3; next }
  $1 == "total" { total = $3 - before["total"]; next }
  { d = $3 - before[$1]; by[$2] += d; seen += d }
  END {
    printf "server CPU per observation: %.3f us in all\n", total / hz / n * 1e6;
    for (c in by) if (by[c] > 0)
      printf "  %-18s %.3f us\n", c, by[c] / hz / n * 1e6 | "sort -k2 -nr";
    close("sort -k2 -nr");
    printf "  %-18s %.3f us\n", "(exited threads)", (total - seen) / hz / n * 1e6;
  }' "$TMP/before" "$TMP/after"
