#!/usr/bin/env bash
# A/B benchmark of two definitions of a claim function, on one schema with the same steps, in
# interleaved rounds (so the machine's drift hits both alike). Each round installs one
# definition, claims 3,200 steps in 200 claims of 16 through step_claim (timed inside the
# database, so no client is measured), then puts them back to ready (untimed). Prints
# "VARIANT ROUND MS" per round and each variant's median.
#
# Usage: tools/bench/step_claim_ab.sh DSN A.sql B.sql [ROUNDS]
#   DSN    a migrated chartflow schema with at least 3,200 step rows (e.g. after
#          `chartflow-bench bench --database-url DSN`); its step rows' statuses are changed
#   A.sql  B.sql   each a CREATE OR REPLACE FUNCTION of the claim function to compare
# Used for the pause check in step_claim_rows (docs/benchmarks.md, "Pausing").
set -euo pipefail
dsn="$1" a="$2" b="$3" rounds="${4:-10}"
psql "$dsn" -qAt -v ON_ERROR_STOP=1 <<'SQL'
UPDATE step_run SET status = 'succeeded', lease_owner = NULL WHERE status <> 'succeeded';
UPDATE step_run SET status = 'ready', run_at = now() - interval '1 second', lease_owner = NULL
WHERE (run_id, step_key) IN (SELECT run_id, step_key FROM step_run ORDER BY run_id LIMIT 3200);
SQL
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
  for v in A B; do
    if [[ $v == A ]]; then file="$a"; else file="$b"; fi
    psql "$dsn" -qAt -v ON_ERROR_STOP=1 -f "$file"
    ms="$(psql "$dsn" -qAt -v ON_ERROR_STOP=1 2>&1 <<'SQL' | sed -n 's/^NOTICE: *//p'
DO $$ DECLARE t0 timestamptz := clock_timestamp(); n int; BEGIN
  FOR i IN 1..200 LOOP SELECT count(*) INTO n FROM step_claim('ab', 60000, 16, false, false); END LOOP;
  RAISE NOTICE '%', round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
END $$;
UPDATE step_run SET status = 'ready', lease_owner = NULL, lease_expires_at = NULL WHERE status = 'running';
SQL
    )"
    echo "$v $i $ms" | tee -a "$out"
  done
done
for v in A B; do
  awk -v v="$v" '$1 == v {print $3}' "$out" | sort -n |
    awk -v v="$v" '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
      printf "%s median %.1f ms per 200 claims of 16\n", v, m}'
done
