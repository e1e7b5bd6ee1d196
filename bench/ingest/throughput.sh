#!/usr/bin/env bash
# Durable ingest throughput, client and server together, as issue 13
# measures it: starts its own cohortd (config/dev.yaml, fresh temp data
# dir, port 0), then
#   1. ingest_load: N synthetic observations (five per session) over
#      --streams PushStreams, requests serialized before the clock starts;
#   2. cohortctl push of a JSON Lines file of the held-out shape (written
#      by `cohortctl simulate --jsonl`, five observations per session) to a
#      second fresh server.
# For each it prints observations/s and the CPU time per observation of
# the server and of the client (user + system, from /proc/PID/stat and the
# shell's `time`), which stay meaningful on a shared machine where wall
# time does not.
#
#   bench/ingest/throughput.sh [--observations N] [--streams M]
#                              [--batch B] [--build-dir DIR] [--keep]
#                              [--server-preload LIB]
#
# Defaults: 1000000 observations, 4 streams, batches of 2000, build dir
# $BUILD_DIR or build. Temp dirs are removed at the end (--keep keeps them).
# --server-preload runs cohortd with LD_PRELOAD=LIB (to measure an
# allocator, e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2).
set -euo pipefail
cd "$(dirname "$0")/../.."

OBSERVATIONS=1000000
STREAMS=4
BATCH=2000
BUILD_DIR="${BUILD_DIR:-build}"
KEEP=0
PRELOAD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --observations) OBSERVATIONS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --server-preload) PRELOAD="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "throughput: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
COHORTD="$BUILD_DIR/server/cohortd"
COHORTCTL="$BUILD_DIR/tools/cohortctl/cohortctl"
LOAD="$BUILD_DIR/bench/ingest/ingest_load"
for binary in "$COHORTD" "$COHORTCTL" "$LOAD"; do
  [ -x "$binary" ] || { echo "throughput: $binary is not built" >&2; exit 1; }
done
scripts/dev-secrets
# shellcheck disable=SC1091
set -a; . secrets/dev-tokens.env; set +a

TMP=$(mktemp -d /tmp/cohortd-throughput.XXXXXX)
COHORTD_PRELOAD="$PRELOAD"
# shellcheck source=bench/lib/cohortd_server.sh
. bench/lib/cohortd_server.sh
cleanup() {
  cohortd_stop
  [ "$KEEP" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
cohortd_config

TICKS=$(getconf CLK_TCK)
minor_faults() { awk '{print $10}' "/proc/$1/stat"; }
start_server() {  # $1: name of the run
  mkdir -p "$TMP/$1"
  cohortd_start "$1" "$TMP/$1/store"
}

stop_server() { cohortd_stop; }

# Runs "$@" as the client against the server; prints one summary line.
# $1: label; $2: observations the run pushes; rest: the client command.
measure() {
  local label="$1" n="$2"
  shift 2
  local faults_before faults_after
  faults_before=$(minor_faults "$SERVER_PID")
  thread_ticks "$SERVER_PID" >"$TMP/$label.threads0"
  run_client "$label" "$@"
  faults_after=$(minor_faults "$SERVER_PID")
  thread_ticks "$SERVER_PID" >"$TMP/$label.threads1"
  awk -v label="$label" -v n="$n" -v wall="$WALL_S" -v ticks="$SERVER_TICKS" \
      -v hz="$TICKS" -v client="$CLIENT_CPU_S" \
      -v f0="$faults_before" -v f1="$faults_after" 'BEGIN {
    printf "%s: %d observations in %.2f s wall = %.0f obs/s (client process incl. start-up)\n",
      label, n, wall, n / wall;
    printf "%s: CPU per observation: server %.2f us, client %.2f us\n",
      label, ticks / hz / n * 1e6, client / n * 1e6;
    printf "%s: server page faults per 1000 observations: %.1f\n",
      label, (f1 - f0) / n * 1000;
  }'
  # Server CPU per observation by thread name, over the threads alive at
  # the end (the committer is "ingest-commit"; threads that exited during
  # the run are in the total above only).
  awk -v label="$label" -v n="$n" -v hz="$TICKS" '
    NR == FNR { t0[$1] = $3; next }
    { by[$2] += $3 - ($1 in t0 ? t0[$1] : 0) }
    END {
      line = "";
      for (name in by) {
        if (by[name] > 0) {
          line = line sprintf(" %s %.2f", name, by[name] / hz / n * 1e6);
        }
      }
      printf "%s: server CPU per observation by thread (us):%s\n", label, line;
    }' "$TMP/$label.threads0" "$TMP/$label.threads1"
}

echo "== ingest_load: $OBSERVATIONS observations, $STREAMS streams, batch $BATCH"
start_server load
measure ingest_load "$OBSERVATIONS" "$LOAD" --target "127.0.0.1:$PORT" \
  --observations "$OBSERVATIONS" --streams "$STREAMS" --batch "$BATCH"
stop_server

SESSIONS=$((OBSERVATIONS / 5))
FILE="$TMP/held-out.jsonl"
"$COHORTCTL" simulate --sessions "$SESSIONS" --jsonl "$FILE" --quiet >/dev/null
LINES=$(wc -l <"$FILE")
echo "== cohortctl push: $LINES observations ($SESSIONS sessions), $STREAMS streams, batch $BATCH"
start_server push
measure cohortctl_push "$LINES" "$COHORTCTL" --target "127.0.0.1:$PORT" \
  push "$FILE" --streams "$STREAMS" --batch "$BATCH" --quiet
stop_server
