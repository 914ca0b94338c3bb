#!/usr/bin/env bash
# A/B benchmark of the ingest's event insert before and after retention (issue #17 item 5): A is
# the insert as it was (the hot table's unique index alone decides a duplicate), B as it is now
# (an archived event's key counts too: retention_dedup_archived, schema/engine/0019). Inside the
# database, so no client is measured: each round inserts 2,000 events with fresh dedup keys
# (an upload's case: every chart revision has one) and 2,000 without, in interleaved rounds.
# The archive holds 12 month partitions with 20,000 archived events and their keys, so B probes
# a real index.
# Prints "VARIANT ROUND KEYED_MS KEYLESS_MS" per round and each variant's medians.
#
# Usage: tools/bench/ingest_dedup_ab.sh DSN [ROUNDS]
#   DSN   a migrated chartflow schema (its event and event_archive tables get rows)
set -euo pipefail
dsn="$1" rounds="${2:-8}"
psql "$dsn" -qAt -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT retention_partition('event_archive', (date_trunc('month', now()) - m * interval '1 month')::date)
  FROM generate_series(2, 13) m;
INSERT INTO event_archive (archived_month, id, type, dedup_key, body, source, created_at)
  SELECT (date_trunc('month', now()) - (2 + g % 12) * interval '1 month')::date,
         1000000000 + g, 'chart.uploaded', 'old-' || g, '{}', 'bench', now() - interval '90 days'
  FROM generate_series(1, 20000) g
  WHERE NOT EXISTS (SELECT 1 FROM event_archive WHERE source = 'bench');
INSERT INTO event_archive_key SELECT type, dedup_key, id, archived_month FROM event_archive
  WHERE source = 'bench' ON CONFLICT DO NOTHING;
ANALYZE event_archive;
ANALYZE event_archive_key;
SQL
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
  for v in A B; do
    ms="$(psql "$dsn" -qAt -v ON_ERROR_STOP=1 -v variant="$v" 2>&1 <<'SQL' | sed -n 's/^NOTICE: *//p'
SELECT set_config('ab.variant', :'variant', false) \gset
DO $$ DECLARE t0 timestamptz; keyed numeric; v text := current_setting('ab.variant'); id bigint; BEGIN
  FOR pass IN 1..2 LOOP
    t0 := clock_timestamp();
    FOR i IN 1..2000 LOOP
      IF v = 'A' THEN
        INSERT INTO event (type, dedup_key, body, source, trace_id)
          VALUES ('chart.uploaded', CASE WHEN pass = 1 THEN 'ab-' || v || '-' || random() END,
                  '{}', 'bench', trace_id_new())
          ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING event.id INTO id;
      ELSE
        INSERT INTO event (type, dedup_key, body, source, trace_id)
          SELECT 'chart.uploaded', k, '{}', 'bench', trace_id_new()
          FROM (SELECT CASE WHEN pass = 1 THEN 'ab-' || v || '-' || random() END AS k) x
          WHERE CASE WHEN k IS NULL THEN true
                     ELSE retention_dedup_archived('chart.uploaded', k) IS NULL END
          ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING event.id INTO id;
      END IF;
    END LOOP;
    IF pass = 1 THEN
      keyed := round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
    ELSE
      RAISE NOTICE '% %', keyed, round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
    END IF;
  END LOOP;
END $$;
DELETE FROM event WHERE source = 'bench';
SQL
    )"
    echo "$v $i $ms" | tee -a "$out"
  done
done
for v in A B; do
  for col in 3 4; do
    awk -v v="$v" -v c="$col" '$1 == v {print $c}' "$out" | sort -n |
      awk -v v="$v" -v c="$col" '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
        printf "%s median %.1f ms per 2,000 %s inserts\n", v, m, (c == 3 ? "keyed" : "keyless")}'
  done
done
