-- A worker's claim in one round trip. It was a transaction of its own (BEGIN, the planner
-- settings, the claim, a look for steps under a concurrency key, then per such step an advisory
-- lock and a count-and-claim, COMMIT): up to a dozen statements parsed and sent one by one, on
-- every claim, most of them finding that nothing was keyed. As a function it is one statement,
-- its plans cached per connection; called on its own it commits by itself, and then (p_async)
-- without waiting for its WAL flush: lost in a crash, a claimed step is simply still ready, and
-- the step's completion (a synchronous commit) flushes the claim before it anyway. The setting
-- is a local one made inside the function, which outlives the function to the commit.
--
-- The planner settings (SET clauses below) hold while it runs: the queue's statements touch a
-- handful of rows by key or by the head of an index whatever the statistics say. A fresh or
-- just-grown step_run has statistics calling it empty, and the sequential, bitmap and hash plans
-- chosen then (and cached by the function for the connection) read every live and dead row of
-- the table or of a partial index on every call.
--
-- Steps under a concurrency key: the advisory lock per key serialises the count-and-claim
-- across processes. The count runs in the statement after the lock's, and a volatile function
-- takes a new snapshot per statement, so it sees every claim committed before the lock was
-- granted; the count and the claim share that one statement.
-- Claims the given steps (already chosen and row-locked by step_claim) with their 'started'
-- history rows. p_limited: only a step whose concurrency key has a free slot (the count runs
-- in this statement, after step_claim's advisory lock).
CREATE OR REPLACE FUNCTION step_claim_rows(p_owner text, p_lease_ms bigint, p_run_ids bigint[],
                                           p_step_keys text[], p_limited boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric)
LANGUAGE plpgsql AS $$
BEGIN
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
      s.wake::text AS wake, extract(epoch FROM s.deadline_at) * 1000 AS deadline_ms),
  h AS (
    INSERT INTO run_history (run_id, type, step, attempt, worker)
    SELECT run_id, 'started', step_key, attempt, p_owner FROM claimed)
  SELECT * FROM claimed;
END
$$;

CREATE OR REPLACE FUNCTION step_claim(p_owner text, p_lease_ms bigint, p_limit int,
                                      p_keyed boolean, p_async boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_sort = off
AS $$
DECLARE
  claimed_count int := 0;
  run_ids bigint[];
  step_keys text[];
  k record;
BEGIN
  IF p_async THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  -- SKIP LOCKED lets many workers claim side by side without waiting on each other's rows.
  SELECT array_agg(due.run_id), array_agg(due.step_key) INTO run_ids, step_keys
  FROM (SELECT s.run_id, s.step_key FROM step_run s
        WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
          AND s.concurrency_key IS NULL
        ORDER BY s.run_at LIMIT p_limit FOR UPDATE SKIP LOCKED) due;
  IF run_ids IS NOT NULL THEN
    RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, false);
    GET DIAGNOSTICS claimed_count = ROW_COUNT;
  END IF;
  IF NOT p_keyed OR claimed_count >= p_limit THEN
    RETURN;
  END IF;
  FOR k IN
    SELECT s.run_id, s.step_key, s.concurrency_key FROM step_run s
    WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
      AND s.concurrency_key IS NOT NULL
    ORDER BY s.run_at, s.run_id LIMIT p_limit - claimed_count FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM pg_advisory_xact_lock(hashtextextended(k.concurrency_key, 0));
    RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, ARRAY[k.run_id],
                                               ARRAY[k.step_key], true);
  END LOOP;
END
$$;
