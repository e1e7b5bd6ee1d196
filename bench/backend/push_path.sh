#!/usr/bin/env bash
# cohortd's real push path with each storage engine (issue 10, item 5):
# starts cohortd (config/dev.yaml's dataset, state in a temp dir) with
# storage.engine rocksdb, then with clickhouse (a clickhouse-server of its
# own on free loopback ports), pushes the same synthetic observations with
# bench/ingest/ingest_load (5 sources per session, every batch acknowledged
# only once durable), and prints per engine: the durable ingest rate,
# cohortd's CPU time per session, its RSS after the load and its peak RSS
# (and clickhouse-server's). backend_bench loads 10M sessions by a bulk
# path instead; this is the sample through gRPC, the ingest pipeline and,
# for clickhouse, the synced outbox.
#
#   bench/backend/push_path.sh [OBSERVATIONS]    (default 1000000)
# Needs build/server/cohortd and build/bench/ingest/ingest_load
# (cmake --build build -t cohortd ingest_load); BUILD=dir overrides build.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
BUILD="${BUILD:-$ROOT/build}"
OBSERVATIONS="${1:-1000000}"
scripts/dev-secrets

WORK="$(mktemp -d /tmp/push_path.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cpu_seconds() {  # utime + stime of pid $1
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}
mem_mb() {  # VmRSS or VmHWM ($2) of pid $1
  awk -v k="$2:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

start_clickhouse() {  # sets CH_URL, CH_PID
  local dir="$WORK/clickhouse" http tcp
  http="$(free_port)"
  tcp="$(free_port)"
  mkdir -p "$dir"
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/server.log</log><errorlog>$dir/server.err.log</errorlog><console>0</console></logger>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
  <timezone>UTC</timezone>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <profiles><default><max_threads>2</max_threads></default></profiles>
  <quotas><default></default></quotas>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
</yandex>
EOF
  clickhouse-server --config-file="$dir/config.xml" >"$dir/stdout.log" 2>&1 &
  CH_PID=$!
  PIDS+=("$CH_PID")
  CH_URL="http://127.0.0.1:$http"
  for _ in $(seq 600); do
    curl -sf "$CH_URL/?query=SELECT%201" >/dev/null && return 0
    sleep 0.1
  done
  echo "clickhouse-server did not start; see $dir" >&2
  exit 1
}

run_engine() {  # $1 = rocksdb | clickhouse
  local engine="$1" dir="$WORK/$1" port config pid before after rate
  mkdir -p "$dir"
  port="$(free_port)"
  config="$dir/cohortd.yaml"
  sed -e "s#data_dir: .*#data_dir: $dir/data#" \
      -e "s#pseudonymization_key_file: .*#pseudonymization_key_file: $dir/pseudonymization.key#" \
      -e "s#principals_file: .*#principals_file: $ROOT/secrets/dev-principals.yaml#" \
      config/dev.yaml >"$config"
  if [ "$engine" = clickhouse ]; then
    start_clickhouse
    printf 'storage:\n  engine: clickhouse\n  clickhouse:\n    url: %s\n    database: cohortd\n' \
      "$CH_URL" >>"$config"
  fi
  "$BUILD/server/cohortd" --config "$config" --listen "127.0.0.1:$port" \
    --metrics-listen "127.0.0.1:$(free_port)" \
    --operator-metrics-listen "127.0.0.1:$(free_port)" >"$dir/cohortd.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 600); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/cohortd.log" >&2; exit 1; }
    sleep 0.1
  done
  before="$(cpu_seconds "$pid")"
  "$BUILD/bench/ingest/ingest_load" --target "127.0.0.1:$port" \
    --observations "$OBSERVATIONS" --streams 4 --sources 5 \
    --token-file "$ROOT/secrets/dev-tokens.env" >"$dir/load.log" 2>&1 || {
    cat "$dir/load.log" "$dir/cohortd.log" >&2
    exit 1
  }
  after="$(cpu_seconds "$pid")"
  rate="$(grep -o '[0-9.]* observations/s' "$dir/load.log" | head -1 | cut -d' ' -f1)"
  printf '%-11s %14s %12.0f %16.1f %12s %12s' "$engine" "${rate:-?}" \
    "$(echo "${rate:-0} / 5" | bc -l)" \
    "$(echo "($after - $before) * 1000000 * 5 / $OBSERVATIONS" | bc -l)" \
    "$(mem_mb "$pid" VmRSS)" "$(mem_mb "$pid" VmHWM)"
  if [ "$engine" = clickhouse ]; then
    printf '   clickhouse-server RSS %s MB, CPU %.1f s' \
      "$(mem_mb "$CH_PID" VmRSS)" "$(cpu_seconds "$CH_PID")"
  fi
  printf '\n'
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "cohortd push path: $OBSERVATIONS observations, 5 sources per session," \
  "4 streams (ingest_load)"
printf '%-11s %14s %12s %16s %12s %12s\n' engine "observations/s" \
  "sessions/s" "CPU us/session" "RSS MB" "peak RSS MB"
run_engine rocksdb
run_engine clickhouse
