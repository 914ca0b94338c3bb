-- The claim carries two more things a worker used to ask for afterwards (issues #17 and #18
-- review): when the step became due (its run_at, the start of a span's queue wait: one query per
-- claimed batch when spans were exported) and its run's reprocess flags (StepContext::rerun:
-- one query per step of billing and discharge, though a reprocess is rare).
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
--
-- The flags are copied onto the run when the reprocess job starts it (a job's flags never
-- change), so the claim reads them from the workflow_run row it already joins; NULL: not a
-- reprocess. Looking them up in reprocess_item and reprocess_job on every claim would cost two
-- probes per step for the few runs that have any.
ALTER TABLE workflow_run ADD COLUMN rerun jsonb;
UPDATE workflow_run r
SET rerun = j.flags || jsonb_build_object('job', j.id, 'reprocess_of', i.source_run_id)
FROM reprocess_item i JOIN reprocess_job j ON j.id = i.job_id
WHERE i.new_run_id = r.id;

-- Two more columns change the functions' row type, which CREATE OR REPLACE cannot do.
-- step_commit calls step_claim by name and passes its rows on whole (to_jsonb), so it needs no
-- change.
DROP FUNCTION step_claim(text, bigint, int, boolean, boolean);
DROP FUNCTION step_claim_rows(text, bigint, bigint[], text[], boolean);

-- 0012_pause.sql's, with c_run_at_ms and c_rerun. The claim leaves run_at, so the RETURNING
-- list's (the new row's) is still when the step became due.
CREATE FUNCTION step_claim_rows(p_owner text, p_lease_ms bigint, p_run_ids bigint[],
                                p_step_keys text[], p_limited boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric, c_run_at_ms numeric, c_rerun jsonb)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET jit = off
AS $$
BEGIN
  -- The candidates are row-locked by the caller, so what is set aside here cannot be claimed
  -- by anyone else meanwhile; what was set aside leaves the arrays the claim below reads. A
  -- paused run is looked up by key (a run that ended paused leaves its row behind and must not
  -- slow every claim).
  IF EXISTS (SELECT 1 FROM workflow_pause)
     OR EXISTS (SELECT 1 FROM run_pause WHERE run_id = ANY (p_run_ids)) THEN
    -- The pauses this claim acts on are share-locked until it commits: a resume deleting one
    -- waits, and its release then sees the steps set aside here (else they stayed paused).
    PERFORM 1 FROM workflow_pause w
    WHERE w.workflow IN (SELECT r.workflow FROM workflow_run r WHERE r.id = ANY (p_run_ids))
    FOR KEY SHARE;
    PERFORM 1 FROM run_pause p WHERE p.run_id = ANY (p_run_ids) FOR KEY SHARE;
    WITH held AS (
      UPDATE step_run s SET held_status = s.status, status = 'paused'
      FROM unnest(p_run_ids, p_step_keys) AS k(run_id, step_key), workflow_run r
      WHERE s.run_id = k.run_id AND s.step_key = k.step_key AND r.id = s.run_id
        AND (EXISTS (SELECT 1 FROM run_pause p WHERE p.run_id = r.id)
             OR EXISTS (SELECT 1 FROM workflow_pause w WHERE w.workflow = r.workflow))
      RETURNING s.run_id, s.step_key),
    h AS (INSERT INTO run_history (run_id, type, step) SELECT run_id, 'held', step_key FROM held)
    SELECT array_agg(k.run_id), array_agg(k.step_key) INTO p_run_ids, p_step_keys
    FROM unnest(p_run_ids, p_step_keys) AS k(run_id, step_key)
    WHERE NOT EXISTS (SELECT 1 FROM held WHERE held.run_id = k.run_id
                                            AND held.step_key = k.step_key);
    IF p_run_ids IS NULL THEN
      RETURN;
    END IF;
  END IF;
  -- The claim itself is 0002_queue.sql's, unchanged: a predicate on status here would match
  -- the claim index's and lead the planner to walk every ready step on each claim.
  RETURN QUERY
  WITH claimed AS (
    UPDATE step_run s SET status = 'running', attempt = s.attempt + 1, lease_owner = p_owner,
      lease_expires_at = clock_timestamp() + p_lease_ms * interval '1 millisecond',
      deadline_at = clock_timestamp() + s.timeout_ms * interval '1 millisecond',
      started_at = coalesce(s.started_at, clock_timestamp())
    FROM unnest(p_run_ids, p_step_keys) AS k(run_id, step_key), workflow_run r
    WHERE s.run_id = k.run_id AND s.step_key = k.step_key AND r.id = s.run_id
      AND (NOT p_limited OR (SELECT count(*) FROM step_run c
                             WHERE c.concurrency_key = s.concurrency_key
                               AND c.status = 'running') < s.concurrency_limit)
    RETURNING s.run_id, s.step_key, s.handler, s.attempt, s.max_attempts,
      r.workflow_version_id, r.workflow, r.event_id,
      (SELECT e.type FROM event e WHERE e.id = r.event_id) AS event_type,
      (SELECT coalesce(jsonb_object_agg(d.step_key, d.output), '{}') FROM step_run d
        WHERE d.run_id = s.run_id AND d.status = 'succeeded') AS outputs,
      s.wake::text AS wake, extract(epoch FROM s.deadline_at) * 1000 AS deadline_ms,
      extract(epoch FROM s.run_at) * 1000 AS run_at_ms, r.rerun),
  h AS (
    INSERT INTO run_history (run_id, type, step, attempt, worker)
    SELECT run_id, 'started', step_key, attempt, p_owner FROM claimed)
  SELECT * FROM claimed;
END
$$;

-- 0008_fair_claim.sql's, unchanged but for its row type.
CREATE FUNCTION step_claim(p_owner text, p_lease_ms bigint, p_limit int, p_keyed boolean,
                           p_async boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric, c_run_at_ms numeric, c_rerun jsonb)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_sort = off
SET jit = off
AS $$
DECLARE
  only_text text := nullif(current_setting('chartflow.claim_only', true), '');
  except_text text := nullif(current_setting('chartflow.claim_except', true), '');
  only_handlers text[];
  except_handlers text[];
  claimed_count int := 0;
  n int;
  window_count int;
  window_runs bigint[];
  window_steps text[];
  window_keys text[];
  run_ids bigint[];
  step_keys text[];
  lock_keys bigint[];
  k bigint;
BEGIN
  IF p_async THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  IF only_text IS NOT NULL THEN
    only_handlers := ARRAY(SELECT jsonb_array_elements_text(only_text::jsonb));
  END IF;
  IF except_text IS NOT NULL THEN
    except_handlers := ARRAY(SELECT jsonb_array_elements_text(except_text::jsonb));
  END IF;
  -- Without concurrency limits in any workflow (p_keyed false) there are no keyed steps to be
  -- fair to: the claim is the one walk it always was.
  -- SKIP LOCKED lets many workers claim side by side without waiting on each other's rows.
  IF NOT p_keyed THEN
    SELECT array_agg(due.run_id), array_agg(due.step_key) INTO run_ids, step_keys
    FROM (SELECT s.run_id, s.step_key FROM step_run s
          WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
            AND s.concurrency_key IS NULL
            AND (only_handlers IS NULL OR s.handler = ANY (only_handlers))
            AND (except_handlers IS NULL OR s.handler <> ALL (except_handlers))
          ORDER BY s.run_at LIMIT p_limit FOR UPDATE SKIP LOCKED) due;
    IF run_ids IS NOT NULL THEN
      RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, false);
    END IF;
    RETURN;
  END IF;
  SELECT array_agg(w.run_id), array_agg(w.step_key), array_agg(w.concurrency_key), count(*)
    INTO window_runs, window_steps, window_keys, window_count
  FROM (SELECT s.run_id, s.step_key, s.concurrency_key FROM step_run s
        WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
          AND (s.concurrency_key IS NULL
               OR (SELECT count(*) FROM step_run c
                   WHERE c.concurrency_key = s.concurrency_key
                     AND c.status = 'running') < s.concurrency_limit)
          AND (only_handlers IS NULL OR s.handler = ANY (only_handlers))
          AND (except_handlers IS NULL OR s.handler <> ALL (except_handlers))
        ORDER BY s.run_at LIMIT p_limit FOR UPDATE SKIP LOCKED) w;
  IF window_count = 0 THEN
    RETURN;
  END IF;
  SELECT array_agg(u.run_id), array_agg(u.step_key) INTO run_ids, step_keys
  FROM unnest(window_runs, window_steps, window_keys) AS u(run_id, step_key, concurrency_key)
  WHERE u.concurrency_key IS NULL;
  IF run_ids IS NOT NULL THEN
    RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, false);
    GET DIAGNOSTICS claimed_count = ROW_COUNT;
  END IF;
  -- At most one step per key (two of one key in one statement would both count the same running
  -- steps); its key's advisory lock is taken in hash order, as every claimer takes them.
  SELECT array_agg(one.run_id), array_agg(one.step_key),
         array_agg(hashtextextended(one.concurrency_key, 0) ORDER BY
                   hashtextextended(one.concurrency_key, 0))
    INTO run_ids, step_keys, lock_keys
  FROM (SELECT DISTINCT ON (u.concurrency_key) u.run_id, u.step_key, u.concurrency_key
        FROM unnest(window_runs, window_steps, window_keys) WITH ORDINALITY
          AS u(run_id, step_key, concurrency_key, i)
        WHERE u.concurrency_key IS NOT NULL
        ORDER BY u.concurrency_key, u.i) one;
  IF run_ids IS NOT NULL THEN
    FOREACH k IN ARRAY lock_keys LOOP
      PERFORM pg_advisory_xact_lock(k);
    END LOOP;
    RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, true);
    GET DIAGNOSTICS n = ROW_COUNT;
    claimed_count := claimed_count + n;
  END IF;
  -- A short window means nothing more is due; a full one that claimed less has room left.
  IF window_count < p_limit OR claimed_count >= p_limit THEN
    RETURN;
  END IF;
  SELECT array_agg(due.run_id), array_agg(due.step_key) INTO run_ids, step_keys
  FROM (SELECT s.run_id, s.step_key FROM step_run s
        WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
          AND s.concurrency_key IS NULL
          AND (only_handlers IS NULL OR s.handler = ANY (only_handlers))
          AND (except_handlers IS NULL OR s.handler <> ALL (except_handlers))
        ORDER BY s.run_at LIMIT p_limit - claimed_count FOR UPDATE SKIP LOCKED) due;
  IF run_ids IS NOT NULL THEN
    RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, false);
  END IF;
END
$$;
