-- step_claim's steps under a concurrency key, claimed in one statement. 0010 claimed them one
-- at a time: per candidate an advisory lock on its key, then a call of step_claim_rows that
-- counted the key's running steps and claimed the one step. Every chart run has two keyed steps
-- (its scan and its billing), so that was a nested function call and an UPDATE per keyed step.
--
-- Now: the candidates are row-locked as before, at most one per key (two steps of one key in
-- one statement would both count the same running steps, and both fit a limit only one slot
-- had room for; the next claim takes the next), their keys' advisory locks are taken in one
-- order (by hash: two claimers taking overlapping keys in their own orders could deadlock), and
-- one step_claim_rows call counts and claims them all. The count runs in a statement after
-- every lock was granted, so it sees every claim committed before.
--
-- jit = off, here and in the other queue functions: the planner settings price a plan they
-- rule out (here the sort of the few candidates by key, which nothing else can do) at 1e10,
-- far above jit_above_cost, and PostgreSQL then compiled the statement on every call: 40 ms of
-- CPU per chart run where the claim itself takes a fraction of one.
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
  claimed_count int := 0;
  run_ids bigint[];
  step_keys text[];
  lock_keys bigint[];
  k bigint;
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
  SELECT array_agg(one.run_id), array_agg(one.step_key),
         array_agg(hashtextextended(one.concurrency_key, 0) ORDER BY
                   hashtextextended(one.concurrency_key, 0))
    INTO run_ids, step_keys, lock_keys
  FROM (SELECT DISTINCT ON (c.concurrency_key) c.run_id, c.step_key, c.concurrency_key
        FROM (SELECT s.run_id, s.step_key, s.concurrency_key, s.run_at FROM step_run s
              WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
                AND s.concurrency_key IS NOT NULL
              ORDER BY s.run_at, s.run_id LIMIT p_limit - claimed_count
              FOR UPDATE SKIP LOCKED) c
        ORDER BY c.concurrency_key, c.run_at, c.run_id) one;
  IF run_ids IS NULL THEN
    RETURN;
  END IF;
  FOREACH k IN ARRAY lock_keys LOOP
    PERFORM pg_advisory_xact_lock(k);
  END LOOP;
  RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, true);
END
$$;

ALTER FUNCTION step_claim_rows(text, bigint, bigint[], text[], boolean) SET jit = off;
ALTER FUNCTION step_commit(text, jsonb, bigint[], jsonb, int, bigint, boolean) SET jit = off;
ALTER FUNCTION step_wait(bigint, text, text, int, text, bigint) SET jit = off;
ALTER FUNCTION run_signal_deliver(bigint, text, jsonb) SET jit = off;
