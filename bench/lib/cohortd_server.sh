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
#   thread_ticks PID             one line per live thread of PID:
#                                "TID NAME TICKS" (NAME its comm, spaces
#                                made underscores)
#   run_client LABEL CMD...      runs CMD, a client of the running cohortd,
#                                its output in $TMP/LABEL.client.out/.err
#                                (exits the script if it fails), prints its
#                                output, and sets WALL_S (its wall time, s),
#                                CLIENT_CPU_S (its user + system CPU, s) and
#                                SERVER_TICKS (cohortd's CPU meanwhile)
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
# One line per live thread of process $1: "TID NAME TICKS" (utime +
# stime; the name is the thread's comm, spaces made underscores).
thread_ticks() {
  local stat tid rest name
  for stat in /proc/"$1"/task/*/stat; do
    rest=$(cat "$stat" 2>/dev/null) || continue
    tid=${rest%% *}
    name=${rest#*(}; name=${name%)*}
    rest=${rest##*) }
    # After the comm: field 3 is the state, so utime/stime (fields 14/15)
    # are words 12 and 13 here.
    echo "$tid ${name// /_} $(echo "$rest" | awk '{print $12 + $13}')"
  done
}

run_client() {
  local label="$1" out="$TMP/$1.client" before start end
  shift
  before=$(cpu_ticks "$SERVER_PID")
  start=$(date +%s.%N)
  { TIMEFORMAT='%U %S'; time "$@" >"$out.out" 2>"$out.err"; } 2>"$out.time" ||
    { echo "$_cohortd_who: $label failed:" >&2; cat "$out.out" "$out.err" >&2; exit 1; }
  end=$(date +%s.%N)
  # shellcheck disable=SC2034  # read by the sourcing script
  SERVER_TICKS=$(($(cpu_ticks "$SERVER_PID") - before))
  WALL_S=$(awk -v s0="$start" -v s1="$end" 'BEGIN { print s1 - s0 }')
  CLIENT_CPU_S=$(awk '{ print $1 + $2 }' "$out.time")
  cat "$out.out"
}
