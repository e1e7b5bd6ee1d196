#!/usr/bin/env bash
# What a well-behaved client sees while another abuses sources, as issue
# 13 measures it: starts its own cohortd (config/dev.yaml, fresh temp
# data dir, port 0, ingest.max_sources_per_session raised to --sources so
# the storage layout is measured, not the cap), then runs ingest_load
# with one stream pushing N distinct sources to one session (batches of
# --batch) and one probe stream pushing single-observation batches one
# after the other until the abuser is done. Prints the probe's
# p50/p99/max latency, the abuser's time, and the server's CPU.
#
#   bench/ingest/source_abuse.sh [--sources N] [--probe P] [--batch B]
#                                [--build-dir DIR]
#
# Defaults: 100000 sources, at least 200 probes, batches of 2000, build
# dir $BUILD_DIR or build.
set -euo pipefail
cd "$(dirname "$0")/../.."

SOURCES=100000
PROBE=200
BATCH=2000
BUILD_DIR="${BUILD_DIR:-build}"
while [ $# -gt 0 ]; do
  case "$1" in
    --sources) SOURCES="$2"; shift 2 ;;
    --probe) PROBE="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "source_abuse: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
COHORTD="$BUILD_DIR/server/cohortd"
LOAD="$BUILD_DIR/bench/ingest/ingest_load"
for binary in "$COHORTD" "$LOAD"; do
  [ -x "$binary" ] || { echo "source_abuse: $binary is not built" >&2; exit 1; }
done
scripts/dev-secrets
# shellcheck disable=SC1091
set -a; . secrets/dev-tokens.env; set +a

TMP=$(mktemp -d /tmp/cohortd-abuse.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# dev.yaml with paths made absolute and the per-session source cap raised.
sed -e "s|\.\./\.data/|$TMP/|g" -e "s|\.\./secrets/|$PWD/secrets/|g" \
  config/dev.yaml >"$TMP/cohortd.yaml"
if grep -q '^ingest:' "$TMP/cohortd.yaml"; then
  sed -i "/^ingest:/a\\  max_sources_per_session: $((SOURCES + 1))" \
    "$TMP/cohortd.yaml"
else
  printf 'ingest:\n  max_sources_per_session: %d\n' $((SOURCES + 1)) \
    >>"$TMP/cohortd.yaml"
fi

"$COHORTD" --config "$TMP/cohortd.yaml" --data-dir "$TMP/store" \
  --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --operator-metrics-listen 127.0.0.1:0 \
  >"$TMP/cohortd.out" 2>"$TMP/cohortd.log" &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 300); do
  PORT=$(sed -n 's/^cohortd: listening on port \([0-9]*\).*/\1/p' \
    "$TMP/cohortd.out")
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null ||
    { echo "source_abuse: cohortd exited:" >&2; cat "$TMP/cohortd.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "source_abuse: cohortd did not start" >&2; exit 1; }

TICKS=$(getconf CLK_TCK)
before=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
echo "== one client pushes $SOURCES sources to one session (batches of $BATCH); another pushes single observations"
"$LOAD" --target "127.0.0.1:$PORT" --observations 0 --streams 1 \
  --batch "$BATCH" --abuse-sources "$SOURCES" --probe "$PROBE"
after=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
awk -v t0="$before" -v t1="$after" -v hz="$TICKS" -v n="$SOURCES" 'BEGIN {
  printf "server CPU: %.2f s (%.2f us per abusive source)\n",
    (t1 - t0) / hz, (t1 - t0) / hz / n * 1e6 }'
