# shellcheck shell=bash
# A throwaway cohortd for the benchmarks and drills (bench/*/*.sh,
# scripts/restore-drill): config/dev.yaml with its relative paths made
# absolute, loopback port 0, a data dir of the caller's choice. Source it
# from the repository root after setting
#   COHORTD  the cohortd binary
#   TMP      a temp dir the caller creates and removes
# and optionally COHORTD_PRELOAD (cohortd runs with LD_PRELOAD set to it).
# Then:
#   cohortd_config [EXTRA_YAML]  writes $TMP/cohortd.yaml (EXTRA_YAML, if
#                                given, is appended: whole top-level
#                                sections that dev.yaml does not have)
#   cohortd_start NAME DATA_DIR  starts cohortd, logs to $TMP/NAME.out and
#                                $TMP/NAME.log; sets SERVER_PID and PORT;
#                                exits the script if it does not start
#   cohortd_stop                 SIGTERM, waits; safe to call twice (e.g.
#                                from the caller's EXIT trap)
#   cpu_ticks PID                user + system CPU of PID, in clock ticks
#                                (getconf CLK_TCK per second)
SERVER_PID=""
PORT=""
_cohortd_who=$(basename "$0" .sh)

cohortd_config() {
  sed -e "s|\.\./\.data/|$TMP/|g" -e "s|\.\./secrets/|$PWD/secrets/|g" \
    config/dev.yaml >"$TMP/cohortd.yaml"
  if [ $# -gt 0 ] && [ -n "$1" ]; then printf '%s\n' "$1" >>"$TMP/cohortd.yaml"; fi
}

cohortd_start() {  # $1: name of the run, $2: data dir
  LD_PRELOAD="${COHORTD_PRELOAD:-}" \
    "$COHORTD" --config "$TMP/cohortd.yaml" --data-dir "$2" \
    --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --operator-metrics-listen 127.0.0.1:0 \
    >"$TMP/$1.out" 2>"$TMP/$1.log" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 300); do
    PORT=$(sed -n 's/^cohortd: listening on port \([0-9]*\).*/\1/p' \
      "$TMP/$1.out")
    [ -n "$PORT" ] && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      SERVER_PID=""
      echo "$_cohortd_who: cohortd exited:" >&2
      cat "$TMP/$1.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "$_cohortd_who: cohortd did not start within 30 s" >&2
  exit 1
}

cohortd_stop() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" || true
  fi
  SERVER_PID=""
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
