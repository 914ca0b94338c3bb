-- Retention that frees disk (issue #17 item 5). The hot tables (workflow_run, step_run,
-- run_history, run_signal, event) stay unpartitioned: every claim, commit and lookup goes by run
-- id, and partitioning them by time would put the time into their keys and every statement, with
-- pruning the claim cannot do (it does not know a run's time). Finished runs instead move, in
-- batches, a while after they end (--retention-archive-after), into *_archive tables partitioned
-- by the month the run finished; reads go through the *_all views, which join both. Expiry drops
-- an archive month whole. The runs of held subjects (legal hold, retention_hold) are first moved
-- into the *_held partition, which nothing drops. log_record is partitioned by day directly: it
-- has no keys to keep.
--
-- A column added to a hot table later must be added to its archive (same position: the archive
-- is archived_month followed by the hot table's columns) and the *_all view made again.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.

CREATE TABLE retention_hold (
  subject     text PRIMARY KEY,
  reason      text NOT NULL,
  held_by     text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT retention_hold_subject_length CHECK (length(subject) BETWEEN 1 AND 200),
  CONSTRAINT retention_hold_reason_length CHECK (length(reason) BETWEEN 1 AND 1000)
);

CREATE TABLE workflow_run_archive (archived_month date NOT NULL, LIKE workflow_run INCLUDING COMPRESSION)
  PARTITION BY RANGE (archived_month);
CREATE TABLE step_run_archive (archived_month date NOT NULL, LIKE step_run INCLUDING COMPRESSION)
  PARTITION BY RANGE (archived_month);
CREATE TABLE run_history_archive (archived_month date NOT NULL, LIKE run_history INCLUDING COMPRESSION)
  PARTITION BY RANGE (archived_month);
CREATE TABLE run_signal_archive (archived_month date NOT NULL, LIKE run_signal INCLUDING COMPRESSION)
  PARTITION BY RANGE (archived_month);
CREATE TABLE event_archive (archived_month date NOT NULL, LIKE event INCLUDING COMPRESSION)
  PARTITION BY RANGE (archived_month);

-- The reads the hot tables answer by index, answered by index here too.
CREATE INDEX workflow_run_archive_id_idx ON workflow_run_archive (id);
CREATE INDEX workflow_run_archive_list_idx ON workflow_run_archive (created_at DESC, id DESC);
CREATE INDEX workflow_run_archive_workflow_status_idx ON workflow_run_archive (workflow, status, id DESC);
CREATE INDEX workflow_run_archive_status_idx ON workflow_run_archive (status, created_at DESC, id DESC);
CREATE INDEX workflow_run_archive_subject_idx ON workflow_run_archive (subject, created_at DESC)
  WHERE subject IS NOT NULL;
CREATE INDEX workflow_run_archive_event_idx ON workflow_run_archive (event_id);
CREATE INDEX workflow_run_archive_parent_idx ON workflow_run_archive (parent_run_id)
  WHERE parent_run_id IS NOT NULL;
CREATE INDEX step_run_archive_run_idx ON step_run_archive (run_id, step_key);
CREATE INDEX run_history_archive_run_idx ON run_history_archive (run_id, id);
CREATE INDEX run_signal_archive_run_idx ON run_signal_archive (run_id);
CREATE INDEX event_archive_id_idx ON event_archive (id);

-- Makes (once) the partition of p_parent for the month p_month ('infinity': the held
-- partition), with the parent's column compression.
CREATE FUNCTION retention_partition(p_parent text, p_month date)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
  v_name text := p_parent || CASE WHEN p_month = 'infinity' THEN '_held'
                                  ELSE to_char(p_month, '"_y"YYYY"m"MM') END;
  c record;
BEGIN
  IF to_regclass(quote_ident(v_name)) IS NOT NULL THEN
    RETURN v_name;
  END IF;
  IF p_month = 'infinity' THEN
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (MAXVALUE)',
                   v_name, p_parent, 'infinity');
  ELSE
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', v_name,
                   p_parent, p_month, (p_month + interval '1 month')::date);
  END IF;
  FOR c IN SELECT attname FROM pg_attribute WHERE attrelid = p_parent::regclass AND attnum > 0
             AND NOT attisdropped AND attcompression = 'l' LOOP
    EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET COMPRESSION lz4', v_name, c.attname);
  END LOOP;
  RETURN v_name;
END
$$;

SELECT retention_partition(t, 'infinity')
  FROM unnest(ARRAY['workflow_run_archive', 'step_run_archive', 'run_history_archive',
                    'run_signal_archive', 'event_archive']) t;

-- The views every read of runs goes through: hot rows, then archived ones. A lookup by id
-- reaches both tables' indexes; a page in id order merges them.
DO $$
DECLARE
  t text;
  v_cols text;
BEGIN
  FOREACH t IN ARRAY ARRAY['workflow_run', 'step_run', 'run_history', 'run_signal', 'event'] LOOP
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols FROM pg_attribute
      WHERE attrelid = t::regclass AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('CREATE VIEW %I AS SELECT %s, false AS archived FROM %I UNION ALL '
                   'SELECT %s, true FROM %I', t || '_all', v_cols, t, v_cols, t || '_archive');
  END LOOP;
END
$$;

-- The lock one node holds while it archives or expires, per schema (tests and tenants share a
-- server).
CREATE FUNCTION retention_lock_key()
RETURNS bigint
LANGUAGE sql STABLE
AS $$ SELECT hashtextextended('chartflow.retention:' || current_schema(), 0) $$;

-- The lock that orders an event's dedup check (retention_dedup_archived) against the archiver
-- moving an event with that key out of the hot table's unique index.
CREATE FUNCTION retention_dedup_key(p_type text, p_dedup_key text)
RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$ SELECT hashtextextended(p_type || E'\n' || p_dedup_key, 7) $$;

-- The dedup keys of archived events, in one small table: an ingest with a key probes one index
-- here instead of one per archive month (retention_dedup_archived). Written with the archive,
-- kept in step with it by expiry and restores.
CREATE TABLE event_archive_key (
  type            text NOT NULL,
  dedup_key       text NOT NULL,
  event_id        bigint NOT NULL,
  archived_month  date NOT NULL,
  PRIMARY KEY (type, dedup_key)
);
CREATE INDEX event_archive_key_month_idx ON event_archive_key (archived_month);
CREATE INDEX event_archive_key_event_idx ON event_archive_key (event_id);

-- A dedup key outlives the hot table: the id of an archived event of this type and key (the
-- ingest then reports a duplicate), or NULL. Takes the key's lock until the caller's commit.
CREATE FUNCTION retention_dedup_archived(p_type text, p_dedup_key text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(retention_dedup_key(p_type, p_dedup_key));
  SELECT event_id INTO v_id FROM event_archive_key WHERE type = p_type AND dedup_key = p_dedup_key;
  RETURN v_id;
END
$$;

-- Moves up to p_batch runs that finished more than p_after ago, with their steps, history,
-- signals and (once none of its runs is left hot) their event, into the archive; then up to
-- p_batch events older than p_after that started no run (no workflow matched, or debounced
-- away). One node at a time (the advisory lock); a run some command holds is left for the next
-- batch. A parent goes after its children, so no hot child points at an archived parent.
-- Months are UTC months. Returns the runs and events moved.
CREATE FUNCTION retention_archive(p_after interval, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
SET TimeZone = 'UTC' SET lock_timeout = '5s'
AS $$
DECLARE
  v_runs bigint[];
  v_events bigint[];
  v_months date[];
  v_runless bigint[];
  m date;
  t text;
BEGIN
  IF NOT pg_try_advisory_xact_lock(retention_lock_key()) THEN
    RETURN 0;
  END IF;
  SELECT array_agg(id) INTO v_runs FROM (
    SELECT r.id FROM workflow_run r
    WHERE r.status IN ('succeeded', 'failed', 'cancelled') AND r.created_at < now() - p_after
      AND r.finished_at < now() - p_after
      AND NOT EXISTS (SELECT 1 FROM workflow_run c WHERE c.parent_run_id = r.id)
    ORDER BY r.created_at LIMIT p_batch FOR UPDATE SKIP LOCKED) s;
  -- Events with no hot run: none ever started (no workflow matched, or debounced away), or
  -- left behind while a debounce still pointed at them.
  SELECT array_agg(id) INTO v_runless FROM (
    SELECT e.id FROM event e
    WHERE e.created_at < now() - p_after
      AND NOT EXISTS (SELECT 1 FROM workflow_run r WHERE r.event_id = e.id)
      AND NOT EXISTS (SELECT 1 FROM debounce_pending d WHERE d.event_id = e.id)
    ORDER BY e.id LIMIT p_batch FOR UPDATE SKIP LOCKED) s;
  IF v_runs IS NULL AND v_runless IS NULL THEN
    RETURN 0;
  END IF;
  v_runs := coalesce(v_runs, '{}');
  v_runless := coalesce(v_runless, '{}');
  -- An event goes with the last of its runs (a reprocessed run shares its source's event), in
  -- the latest month of any of its runs archived so far, so it is never dropped before a run
  -- that points at it.
  SELECT array_agg(event_id), array_agg(month) INTO v_events, v_months FROM (
    SELECT r.event_id, greatest(max(date_trunc('month', r.finished_at)::date),
                                (SELECT max(a.archived_month) FROM workflow_run_archive a
                                 WHERE a.event_id = r.event_id
                                   AND a.archived_month < 'infinity')) AS month
    FROM workflow_run r
    WHERE r.id = ANY (v_runs)
      AND NOT EXISTS (SELECT 1 FROM workflow_run o WHERE o.event_id = r.event_id
                        AND o.id <> ALL (v_runs))
      AND NOT EXISTS (SELECT 1 FROM debounce_pending d WHERE d.event_id = r.event_id)
    GROUP BY r.event_id
    UNION ALL
    SELECT e.id, greatest(date_trunc('month', e.created_at)::date,
                          (SELECT max(a.archived_month) FROM workflow_run_archive a
                           WHERE a.event_id = e.id AND a.archived_month < 'infinity'))
    FROM event e WHERE e.id = ANY (v_runless)) ev;
  v_events := coalesce(v_events, '{}');
  v_months := coalesce(v_months, '{}');
  FOR m IN SELECT DISTINCT date_trunc('month', finished_at)::date FROM workflow_run
             WHERE id = ANY (v_runs)
           UNION SELECT DISTINCT x FROM unnest(v_months) x LOOP
    FOREACH t IN ARRAY ARRAY['workflow_run_archive', 'step_run_archive', 'run_history_archive',
                             'run_signal_archive', 'event_archive'] LOOP
      PERFORM retention_partition(t, m);
    END LOOP;
  END LOOP;
  INSERT INTO workflow_run_archive
    SELECT date_trunc('month', r.finished_at)::date, r.* FROM workflow_run r
    WHERE r.id = ANY (v_runs);
  INSERT INTO step_run_archive
    SELECT date_trunc('month', r.finished_at)::date, s.* FROM step_run s
    JOIN workflow_run r ON r.id = s.run_id WHERE s.run_id = ANY (v_runs);
  INSERT INTO run_history_archive
    SELECT date_trunc('month', r.finished_at)::date, h.* FROM run_history h
    JOIN workflow_run r ON r.id = h.run_id WHERE h.run_id = ANY (v_runs);
  INSERT INTO run_signal_archive
    SELECT date_trunc('month', r.finished_at)::date, g.* FROM run_signal g
    JOIN workflow_run r ON r.id = g.run_id WHERE g.run_id = ANY (v_runs);
  -- A dedup key leaves the hot table's unique index here: its lock first, so an ingest checking
  -- the key either ran before (and met the hot row) or runs after (and meets the archived one).
  PERFORM pg_advisory_xact_lock(retention_dedup_key(e.type, e.dedup_key))
    FROM event e WHERE e.id = ANY (v_events) AND e.dedup_key IS NOT NULL
    ORDER BY retention_dedup_key(e.type, e.dedup_key);
  INSERT INTO event_archive
    SELECT ev.month, e.* FROM event e
    JOIN unnest(v_events, v_months) AS ev (id, month) ON ev.id = e.id;
  INSERT INTO event_archive_key
    SELECT e.type, e.dedup_key, e.id, ev.month FROM event e
    JOIN unnest(v_events, v_months) AS ev (id, month) ON ev.id = e.id
    WHERE e.dedup_key IS NOT NULL;
  DELETE FROM run_signal WHERE run_id = ANY (v_runs);
  DELETE FROM run_history WHERE run_id = ANY (v_runs);
  DELETE FROM step_run WHERE run_id = ANY (v_runs);
  DELETE FROM run_pause WHERE run_id = ANY (v_runs);
  DELETE FROM workflow_run WHERE id = ANY (v_runs);
  DELETE FROM event WHERE id = ANY (v_events);
  RETURN cardinality(v_runs) + cardinality(v_runless);
END
$$;

-- A reprocessed run starts from its source run's event: an archived event comes back to the
-- hot table first (workflow_run.event_id references it there).
CREATE FUNCTION retention_restore_event(p_id bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_cols text;
  v_restored bigint;
BEGIN
  IF EXISTS (SELECT 1 FROM event WHERE id = p_id) THEN
    RETURN;
  END IF;
  SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols FROM pg_attribute
    WHERE attrelid = 'event'::regclass AND attnum > 0 AND NOT attisdropped;
  -- Copied first, deleted once in place: a hot event holding its dedup key now (a later one of
  -- the same type and key) leaves the archived one where it is, and the caller is told.
  EXECUTE format('INSERT INTO event (%s) SELECT %s FROM event_archive WHERE id = $1 '
                 'ON CONFLICT DO NOTHING RETURNING id', v_cols, v_cols)
    INTO v_restored USING p_id;
  IF v_restored IS NULL THEN
    RAISE EXCEPTION 'event % cannot come back from the archive (its dedup key is taken by a '
                    'newer event, or it expired)', p_id
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  DELETE FROM event_archive WHERE id = p_id;
  DELETE FROM event_archive_key WHERE event_id = p_id;
END
$$;

-- log_record, partitioned by day. The rows already there become one partition, ending
-- tomorrow; retention_ensure_partitions makes the days ahead.
ALTER TABLE log_record RENAME TO log_record_until_partitioned;
ALTER TABLE log_record_until_partitioned DROP CONSTRAINT log_record_pkey;
ALTER INDEX log_record_at_idx RENAME TO log_record_until_partitioned_at_idx;
ALTER INDEX log_record_run_idx RENAME TO log_record_until_partitioned_run_idx;
CREATE TABLE log_record (LIKE log_record_until_partitioned INCLUDING DEFAULTS
                         INCLUDING CONSTRAINTS INCLUDING COMPRESSION,
                         PRIMARY KEY (id, at))
  PARTITION BY RANGE (at);
ALTER SEQUENCE log_record_id_seq OWNED BY log_record.id;
CREATE INDEX log_record_at_idx ON log_record (at, level);
CREATE INDEX log_record_run_idx ON log_record (run_id, at) WHERE run_id IS NOT NULL;
DO $$
BEGIN
  EXECUTE format('ALTER TABLE log_record ATTACH PARTITION log_record_until_partitioned '
                 'FOR VALUES FROM (MINVALUE) TO (%L)',
                 (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC');
END
$$;

-- Makes the day partitions (UTC days) of log_record from today through p_days ahead; a day
-- already covered (made before, or inside the partition the rows before partitioning became)
-- is skipped. Idempotent; run at start and hourly. Returns the partitions made.
CREATE FUNCTION retention_ensure_partitions(p_days integer)
RETURNS integer
LANGUAGE plpgsql
SET TimeZone = 'UTC' SET lock_timeout = '5s'
AS $$
DECLARE
  d date;
  v_name text;
  n integer := 0;
BEGIN
  FOR d IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date,
                                  (now() AT TIME ZONE 'UTC')::date + p_days,
                                  interval '1 day')::date LOOP
    v_name := to_char(d, '"log_record_y"YYYY"m"MM"d"DD');
    CONTINUE WHEN to_regclass(quote_ident(v_name)) IS NOT NULL;
    BEGIN
      EXECUTE format('CREATE TABLE %I PARTITION OF log_record FOR VALUES FROM (%L) TO (%L)',
                     v_name, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
      n := n + 1;
    EXCEPTION WHEN invalid_object_definition THEN
      NULL;  -- overlaps the partition of the rows before partitioning: that day is covered
    END;
  END LOOP;
  RETURN n;
END
$$;
SELECT retention_ensure_partitions(7);

-- Every partition retention manages, with its bounds and size (rows: the planner's estimate;
-- counting a month of history would read it all).
CREATE VIEW retention_partition_list AS
SELECT CASE WHEN i.inhparent = 'log_record'::regclass THEN 'logs' ELSE 'runs' END AS class,
       p.relname::text AS parent, c.relname::text AS partition,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1] AS from_bound,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1] AS to_bound,
       c.relname LIKE '%\_held' AS held,
       pg_total_relation_size(c.oid) AS bytes, greatest(c.reltuples, 0)::bigint AS rows_estimate
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE i.inhparent IN ('workflow_run_archive'::regclass, 'step_run_archive'::regclass,
                      'run_history_archive'::regclass, 'run_signal_archive'::regclass,
                      'event_archive'::regclass, 'log_record'::regclass);

-- Drops each archive month that ended more than p_runs ago, after moving its held subjects'
-- runs (with their steps, history, signals and events) into the *_held partitions, and each
-- log day that ended more than p_logs ago. With p_dry_run nothing changes: the rows say what
-- would be dropped and how many runs a hold keeps. One node at a time; a busy lock answers no
-- rows (another node is expiring).
CREATE FUNCTION retention_expire(p_runs interval, p_logs interval, p_dry_run boolean)
RETURNS TABLE (class text, part text, until timestamptz, bytes bigint, rows_estimate bigint,
               held_runs bigint)
LANGUAGE plpgsql
SET TimeZone = 'UTC' SET lock_timeout = '5s'
AS $$
DECLARE
  v record;
  v_month date;
  v_held bigint[];
  v_released bigint[];
  t text;
BEGIN
  IF NOT p_dry_run THEN
    IF NOT pg_try_advisory_xact_lock(retention_lock_key()) THEN
      RETURN;
    END IF;
    -- A hold made while this runs waits for it; one made before is seen.
    LOCK TABLE retention_hold IN SHARE MODE;
  END IF;
  -- Runs kept for a hold that has since been released, and past their retention: they go as
  -- their month would have (rows, since the held partition is never dropped).
  SELECT array_agg(r.id) INTO v_released FROM workflow_run_archive r
    WHERE r.archived_month = 'infinity' AND r.finished_at < now() - p_runs
      AND (r.subject IS NULL OR r.subject NOT IN (SELECT subject FROM retention_hold));
  IF v_released IS NOT NULL THEN
    class := 'runs';
    part := 'workflow_run_archive_held';
    until := now() - p_runs;
    bytes := 0;
    rows_estimate := cardinality(v_released);
    held_runs := 0;
    RETURN NEXT;
    IF NOT p_dry_run THEN
      DELETE FROM run_signal_archive WHERE archived_month = 'infinity' AND run_id = ANY (v_released);
      DELETE FROM run_history_archive WHERE archived_month = 'infinity' AND run_id = ANY (v_released);
      DELETE FROM step_run_archive WHERE archived_month = 'infinity' AND run_id = ANY (v_released);
      DELETE FROM workflow_run_archive WHERE archived_month = 'infinity' AND id = ANY (v_released);
      WITH gone AS (
        DELETE FROM event_archive e WHERE e.archived_month = 'infinity'
          AND NOT EXISTS (SELECT 1 FROM workflow_run_all r WHERE r.event_id = e.id)
        RETURNING e.id)
      DELETE FROM event_archive_key k USING gone WHERE k.event_id = gone.id;
    END IF;
  END IF;
  FOR v IN SELECT l.partition, l.from_bound, l.to_bound::timestamptz AS upper
             FROM retention_partition_list l
             WHERE l.parent = 'workflow_run_archive' AND NOT l.held
               AND l.to_bound::date <= now() - p_runs ORDER BY l.from_bound::date LOOP
    v_month := v.from_bound::date;
    SELECT array_agg(r.id) INTO v_held FROM workflow_run_archive r
      WHERE r.archived_month = v_month AND r.subject IN (SELECT subject FROM retention_hold);
    IF NOT p_dry_run AND v_held IS NOT NULL THEN
      UPDATE workflow_run_archive SET archived_month = 'infinity'
        WHERE archived_month = v_month AND id = ANY (v_held);
      UPDATE step_run_archive SET archived_month = 'infinity'
        WHERE archived_month = v_month AND run_id = ANY (v_held);
      UPDATE run_history_archive SET archived_month = 'infinity'
        WHERE archived_month = v_month AND run_id = ANY (v_held);
      UPDATE run_signal_archive SET archived_month = 'infinity'
        WHERE archived_month = v_month AND run_id = ANY (v_held);
    END IF;
    IF NOT p_dry_run THEN
      -- An event goes with its latest run, so this month's events are only the events of this
      -- month's runs and of runs before it (dropped already, or held).
      UPDATE event_archive SET archived_month = 'infinity'
        WHERE archived_month = v_month AND id IN (
          SELECT r.event_id FROM workflow_run_archive r WHERE r.archived_month = 'infinity');
      UPDATE event_archive_key k SET archived_month = 'infinity' FROM event_archive e
        WHERE e.archived_month = 'infinity' AND k.event_id = e.id AND k.archived_month = v_month;
      DELETE FROM event_archive_key WHERE archived_month = v_month;
    END IF;
    FOREACH t IN ARRAY ARRAY['workflow_run_archive', 'step_run_archive', 'run_history_archive',
                             'run_signal_archive', 'event_archive'] LOOP
      FOR class, part, until, bytes, rows_estimate IN
          SELECT 'runs', l.partition, v.upper, l.bytes, l.rows_estimate
          FROM retention_partition_list l
          WHERE l.parent = t AND l.from_bound = v.from_bound AND NOT l.held LOOP
        held_runs := CASE WHEN t = 'workflow_run_archive' THEN coalesce(cardinality(v_held), 0)
                          ELSE 0 END;
        RETURN NEXT;
        IF NOT p_dry_run THEN
          EXECUTE format('DROP TABLE %I', part);
        END IF;
      END LOOP;
    END LOOP;
  END LOOP;
  FOR class, part, until, bytes, rows_estimate IN
      SELECT 'logs', l.partition, l.to_bound::timestamptz, l.bytes, l.rows_estimate
      FROM retention_partition_list l
      WHERE l.parent = 'log_record' AND l.to_bound::timestamptz <= now() - p_logs
      ORDER BY l.to_bound::timestamptz LOOP
    held_runs := 0;
    RETURN NEXT;
    IF NOT p_dry_run THEN
      EXECUTE format('DROP TABLE %I', part);
    END IF;
  END LOOP;
END
$$;
