-- Fair claims and claims scoped to a pool of workers (issue #15, item 6). Replaces step_claim
-- (0002_queue.sql; same signature, so step_commit, which claims the next batch through it, is
-- unchanged).
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
--
-- Fairness. step_claim took unkeyed steps first and steps under a concurrency key only when the
-- unkeyed ones left room in the batch: in a burst every claim came back full of unkeyed steps,
-- and charts' scans (keyed by chart) started up to 247 s late. Now a claim takes the p_limit
-- steps that have been due longest, keyed or not, in one walk of the head of the claim index
-- (step_run_claim_idx, which holds both kinds): the unkeyed among them are claimed as before, the
-- keyed as before (one per key, advisory locks in one order, the count made under them). No
-- search for "the oldest keyed step" is needed, so no walk over a flood of unkeyed steps and no
-- second index to keep up on every queue write. A batch left short by keyed candidates that
-- could not be claimed (a second step of one key) is topped up with the next unkeyed steps.
--
-- A keyed step whose key is already at its limit is passed over in the walk: otherwise a queue of
-- one key (a chart uploaded many times over, an external handler's shared limit) fills every
-- claim's window with steps that cannot run and holds back every other key behind it. The count
-- in the walk only screens; the one under the key's advisory lock (step_claim_rows) decides.
--
-- Pools. A worker of a bulkhead (the few workers that run handlers waiting on the network)
-- claims only its handlers' steps, a general worker every other step. Its session says which:
-- chartflow.claim_only or chartflow.claim_except, a JSON array of handler names set once per
-- connection (store/claim_store.cpp: Store::set_claim_scope). Unset, as in a process without
-- bulkheads, a claim takes every handler's steps.
CREATE OR REPLACE FUNCTION step_claim(p_owner text, p_lease_ms bigint, p_limit int,
                                      p_keyed boolean, p_async boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric)
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
