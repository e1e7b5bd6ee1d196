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
# shellcheck source=bench/lib/cohortd_server.sh
. bench/lib/cohortd_server.sh
trap 'cohortd_stop; rm -rf "$TMP"' EXIT
# The per-session source cap raised above N: the layout is measured.
cohortd_config "ingest:
  max_sources_per_session: $((SOURCES + 1))"
cohortd_start abuse "$TMP/store"

TICKS=$(getconf CLK_TCK)
before=$(cpu_ticks "$SERVER_PID")
echo "== one client pushes $SOURCES sources to one session (batches of $BATCH); another pushes single observations"
"$LOAD" --target "127.0.0.1:$PORT" --observations 0 --streams 1 \
  --batch "$BATCH" --abuse-sources "$SOURCES" --probe "$PROBE"
after=$(cpu_ticks "$SERVER_PID")
awk -v t0="$before" -v t1="$after" -v hz="$TICKS" -v n="$SOURCES" 'BEGIN {
  printf "server CPU: %.2f s (%.2f us per abusive source)\n",
    (t1 - t0) / hz, (t1 - t0) / hz / n * 1e6 }'
