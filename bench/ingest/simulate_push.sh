#!/usr/bin/env bash
# `cohortctl simulate --push` against `cohortctl push` of the same
# observations (a `simulate --jsonl` file of the same sessions and seed),
# each into its own fresh cohortd (config/dev.yaml, temp data dir, port 0).
# For each it prints the wall time, observations/s and the CPU time (user +
# system) per observation of the server (/proc/PID/stat) and of the client
# (the shell's `time`), which stay meaningful on a shared machine where
# wall time does not. The JSON Lines file is written before its clock
# starts.
#
#   bench/ingest/simulate_push.sh [--sessions N] [--streams M] [--batch B]
#                                 [--build-dir DIR] [--cohortctl BINARY]
#                                 [--skip-jsonl] [--jsonl-first] [--keep]
#
# Defaults: 200000 sessions (1,000,000 observations), 4 streams, batches
# of 2000, build dir $BUILD_DIR or build. --cohortctl runs another client
# binary (e.g. an older build, for a before/after comparison);
# --skip-jsonl measures `simulate --push` only; --jsonl-first runs the
# `push` of the file first (on a busy machine, run both orders). Temp dirs
# are removed at the end (--keep keeps them).
set -euo pipefail
cd "$(dirname "$0")/../.."

SESSIONS=200000
STREAMS=4
BATCH=2000
BUILD_DIR="${BUILD_DIR:-build}"
COHORTCTL=""
SKIP_JSONL=0
JSONL_FIRST=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --sessions) SESSIONS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --cohortctl) COHORTCTL="$2"; shift 2 ;;
    --skip-jsonl) SKIP_JSONL=1; shift ;;
    --jsonl-first) JSONL_FIRST=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "simulate_push: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
COHORTD="$BUILD_DIR/server/cohortd"
COHORTCTL="${COHORTCTL:-$BUILD_DIR/tools/cohortctl/cohortctl}"
for binary in "$COHORTD" "$COHORTCTL"; do
  [ -x "$binary" ] || { echo "simulate_push: $binary is not built" >&2; exit 1; }
done
scripts/dev-secrets
# shellcheck disable=SC1091
set -a; . secrets/dev-tokens.env; set +a

TMP=$(mktemp -d /tmp/cohortd-simpush.XXXXXX)
# shellcheck source=bench/lib/cohortd_server.sh
. bench/lib/cohortd_server.sh
cleanup() {
  cohortd_stop
  [ "$KEEP" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
cohortd_config
TICKS=$(getconf CLK_TCK)

start_server() {  # $1: name of the run
  mkdir -p "$TMP/$1"
  cohortd_start "$1" "$TMP/$1/store"
}
stop_server() { cohortd_stop; }

# Runs "$@" as the client against the server; prints its output and one
# summary line. $1: label; $2: observations the run pushes; rest: the
# client command.
measure() {
  local label="$1" n="$2"
  shift 2
  run_client "$label" "$@"
  awk -v label="$label" -v n="$n" -v wall="$WALL_S" -v ticks="$SERVER_TICKS" \
      -v hz="$TICKS" -v client="$CLIENT_CPU_S" 'BEGIN {
    printf "%s: %d observations in %.2f s wall = %.0f obs/s (client process incl. start-up)\n",
      label, n, wall, n / wall;
    printf "%s: CPU: server %.2f s = %.2f us/obs, client %.2f s = %.2f us/obs\n",
      label, ticks / hz, ticks / hz / n * 1e6, client, client / n * 1e6;
  }'
}

N=$((SESSIONS * 5))
run_simulate() {
  echo "== cohortctl simulate --push: $N observations ($SESSIONS sessions), $STREAMS streams, batch $BATCH"
  start_server simulate
  measure simulate_push "$N" "$COHORTCTL" --target "127.0.0.1:$PORT" \
    simulate --sessions "$SESSIONS" --push --streams "$STREAMS" \
    --batch "$BATCH" --quiet
  stop_server
}

run_jsonl() {
  local file="$TMP/simulated.jsonl"
  "$COHORTCTL" simulate --sessions "$SESSIONS" --jsonl "$file" --quiet >/dev/null
  echo "== cohortctl push of the same observations as JSON Lines: $N observations, $STREAMS streams, batch $BATCH"
  start_server push
  measure jsonl_push "$N" "$COHORTCTL" --target "127.0.0.1:$PORT" \
    push "$file" --streams "$STREAMS" --batch "$BATCH" --quiet
  stop_server
  rm -f "$file"
}

if [ "$SKIP_JSONL" = 1 ]; then
  run_simulate
elif [ "$JSONL_FIRST" = 1 ]; then
  run_jsonl
  run_simulate
else
  run_simulate
  run_jsonl
fi
