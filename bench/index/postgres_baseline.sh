#!/bin/bash
# The PostgreSQL baseline of issue 4, item 5, beside our own figure: the
# same stand-in query (verified success by occupation among intermediate-
# or-better sessions, with SESSIONS and ACCOUNTS) over the same shape of
# data (400,000 sessions, 235,000 accounts, heavy-tailed), once as a plain
# GROUP BY and once with per-account contribution bounding (<= 4 cohorts
# per account, <= 8 sessions per cohort) by window functions.
#
# Usage: bench/index/postgres_baseline.sh [path/to/columnar_index_bench]
# Needs initdb/pg_ctl/psql (PostgreSQL 15) in PATH. Runs a throwaway server
# on a Unix socket in a temp dir (no TCP), as user postgres when run as
# root, and removes it on exit.
set -euo pipefail

bench=${1:-build-index/bench/index/columnar_index_bench}
sessions=400000
accounts=235000
runs=5

for tool in initdb pg_ctl psql; do
  if ! command -v "$tool" > /dev/null; then
    echo "PostgreSQL not installed ($tool missing): no baseline" >&2
    exit 0
  fi
done

dir=$(mktemp -d /tmp/cohortd-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" pg_ctl -D "$dir/data" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${as_pg[@]}" initdb -D "$dir/data" -A trust -U bench > /dev/null
"${as_pg[@]}" pg_ctl -D "$dir/data" -l "$dir/log" -w \
  -o "-k $dir -c listen_addresses= -c shared_buffers=256MB -c work_mem=64MB" \
  start > /dev/null
sql() { "${as_pg[@]}" psql -h "$dir" -U bench -d postgres -X -q -At "$@"; }

# Same mixes as the benchmark's generator: every account has a session,
# the rest go to accounts drawn with density ~ u^4; ~5% lack occupation,
# ~3% lack expertise.
sql <<SQL
CREATE TABLE sessions AS
SELECT i AS session_id,
       CASE WHEN i < $accounts THEN i
            ELSE floor($accounts * random() ^ 4)::int END AS account,
       CASE WHEN random() < 0.05 THEN NULL
            WHEN o < 0.30 THEN 'unclassified'
            WHEN o < 0.70 THEN 'computer_mathematical'
            ELSE (ARRAY['management', 'business_financial',
                        'architecture_engineering',
                        'life_physical_social_science', 'legal',
                        'educational_instruction_library',
                        'arts_design_media', 'healthcare_practitioners',
                        'sales', 'office_administrative_support',
                        'production'])[1 + floor(random() * 11)::int]
       END AS occupation,
       CASE WHEN random() < 0.03 THEN NULL
            WHEN e < 0.12 THEN 'novice' WHEN e < 0.32 THEN 'beginner'
            WHEN e < 0.67 THEN 'intermediate' WHEN e < 0.90 THEN 'advanced'
            ELSE 'expert' END AS expertise,
       CASE WHEN random() < 0.27 THEN 'true' ELSE 'false' END
         AS verified_success
FROM (SELECT i, random() AS o, random() AS e
      FROM generate_series(0, $sessions - 1) AS i) AS g;
ANALYZE sessions;
SQL

plain="SELECT occupation, count(*), count(DISTINCT account),
         sum((verified_success = 'true')::int)
       FROM sessions
       WHERE expertise IN ('intermediate', 'advanced', 'expert')
       GROUP BY occupation"
bounded="WITH ranked AS (
         SELECT *,
           row_number() OVER (PARTITION BY account, occupation
                              ORDER BY session_id) AS nth_in_cohort,
           dense_rank() OVER (PARTITION BY account
                              ORDER BY occupation) AS nth_cohort
         FROM sessions
         WHERE expertise IN ('intermediate', 'advanced', 'expert'))
       SELECT occupation, count(*), count(DISTINCT account),
         sum((verified_success = 'true')::int)
       FROM ranked WHERE nth_in_cohort <= 8 AND nth_cohort <= 4
       GROUP BY occupation"

# Median server-side execution time (EXPLAIN ANALYZE), in ms.
median_ms() {
  for _ in $(seq $runs); do
    sql -c "EXPLAIN (ANALYZE, TIMING OFF) $1" |
      sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p'
  done | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
pg_plain=$(median_ms "$plain")
pg_bounded=$(median_ms "$bounded")

ours="(bench binary not built)"
ours_plain=""
ours_full=""
if [ -x "$bench" ]; then
  out=$("$bench" --benchmark_filter='BM_GroupByOccupation.*/400k' \
    --benchmark_format=csv 2> /dev/null)
  ours=$(echo "$out" | awk -F, '/"BM_GroupByOccupation\/400k/ {print $4}')
  ours_plain=$(echo "$out" |
    awk -F, '/"BM_GroupByOccupationRowScan\/400k/ {print $4}')
  ours_full=$("$bench" \
    --benchmark_filter='BM_ExecuteVerifiedSuccessByOccupation/400k' \
    --benchmark_format=csv 2> /dev/null |
    awk -F, '/"BM_ExecuteVerifiedSuccessByOccupation\/400k/ {print $4}')
fi

printf '%-58s %10s\n' "400k sessions, verified success by occupation" "ms"
printf '%-58s %10s\n' "PostgreSQL 15 GROUP BY (no privacy)" "$pg_plain"
printf '%-58s %10s\n' "PostgreSQL 15 with per-account bounding (windows)" \
  "$pg_bounded"
printf '%-58s %10s\n' "cohortd index scan, no bounding (CPU)" "$ours_plain"
printf '%-58s %10s\n' "cohortd index, per-account bounding (CPU)" "$ours"
printf '%-58s %10s\n' "cohortd full release: bounding + DP noise (CPU)" \
  "${ours_full:-}"
