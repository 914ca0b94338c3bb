-- The end of a worker's batch in one statement: finish its steps, store its log records and
-- claim the next steps. These were four to six round trips per batch (the planner settings,
-- the finish of each step that wrote, the batched finish of those that did not, the log
-- insert, the claim), and most batches hold a single step.
--
-- p_finishes: [{run_id, step_key, attempt, status ('succeeded' | 'skipped'), output, wrote}].
-- A step is finished only while this owner still holds it at that attempt; one that `wrote`
-- (through the batch's transaction) and was not finished had its lease taken over meanwhile,
-- so its writes must not stand: the function then raises SQLSTATE CFL01 and the caller rolls
-- the transaction back.
-- p_waiting: runs a step of this batch started waiting in (step_wait), marked 'waiting' after
-- the finishes, so a step of the run finished here does not mark the run running again.
-- p_logs: [{level, message, workflow, run_id, step, attempt, fields}].
-- Returns {"promoted": dependents made ready, "succeeded": [workflow of each run that
-- succeeded], "succeeded_ids": [their ids], "claimed": [step_claim rows]}.
--
-- Steps finished here share one finish time, this statement's: their completion is this
-- commit. Dependents and runs are counted down by how many of their needs and steps finished here (one
-- UPDATE changes a row once, so several finishes in one run are aggregated first).
CREATE OR REPLACE FUNCTION step_commit(p_owner text, p_finishes jsonb, p_waiting bigint[],
                                       p_logs jsonb, p_claim int, p_lease_ms bigint,
                                       p_keyed boolean)
RETURNS jsonb
LANGUAGE plpgsql
SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_sort = off
AS $$
DECLARE
  v_promoted bigint := 0;
  v_succeeded jsonb := '[]';
  v_succeeded_ids jsonb := '[]';
  v_lost bigint := 0;
  v_claimed jsonb := '[]';
BEGIN
  -- Run rows are locked in one order by every batch, so two batches finishing steps of the
  -- same runs queue behind each other instead of deadlocking.
  -- (An index scan for an array of keys returns them in key order.)
  IF jsonb_array_length(p_finishes) > 0 OR cardinality(p_waiting) > 0 THEN
    PERFORM 1 FROM workflow_run w
      WHERE w.id = ANY (ARRAY(SELECT (f->>'run_id')::bigint FROM jsonb_array_elements(p_finishes) f)
                        || p_waiting)
      ORDER BY w.id FOR NO KEY UPDATE;
  END IF;
  IF jsonb_array_length(p_finishes) > 0 THEN
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(p_finishes)
        AS x(run_id bigint, step_key text, attempt int, status text, output jsonb, wrote boolean)),
    done AS (
      UPDATE step_run s SET status = i.status, output = i.output,
        finished_at = statement_timestamp(), lease_owner = NULL, wake = NULL, error = NULL
      FROM input i
      WHERE s.run_id = i.run_id AND s.step_key = i.step_key AND s.lease_owner = p_owner
        AND s.attempt = i.attempt AND s.status = 'running'
      RETURNING s.run_id, s.step_key, s.status, s.attempt),
    released AS (
      SELECT p.run_id, p.step_key, count(*) AS n FROM step_run p JOIN done
        ON p.run_id = done.run_id AND p.needs ? done.step_key WHERE p.status = 'pending'
      GROUP BY p.run_id, p.step_key),
    promoted AS (
      UPDATE step_run p SET pending_needs = p.pending_needs - r.n, run_at = now(),
        status = CASE WHEN p.pending_needs = r.n THEN 'ready' ELSE p.status END
      FROM released r WHERE p.run_id = r.run_id AND p.step_key = r.step_key
        AND p.status = 'pending'
      RETURNING p.status),
    per_run AS (SELECT run_id, count(*) AS n FROM done GROUP BY run_id),
    run AS (
      UPDATE workflow_run w SET remaining_steps = w.remaining_steps - pr.n,
        status = CASE WHEN w.remaining_steps = pr.n AND w.status IN ('running', 'waiting')
          THEN 'succeeded' WHEN w.status = 'waiting' THEN 'running' ELSE w.status END,
        finished_at = CASE WHEN w.remaining_steps = pr.n AND w.status IN ('running', 'waiting')
          THEN statement_timestamp() ELSE w.finished_at END
      FROM per_run pr WHERE w.id = pr.run_id
      RETURNING w.id, w.workflow, w.status, w.remaining_steps),
    h1 AS (
      INSERT INTO run_history (run_id, type, step, attempt, worker)
      SELECT run_id, status, step_key, attempt, p_owner FROM done),
    h2 AS (
      INSERT INTO run_history (run_id, type, worker)
      SELECT id, 'succeeded', p_owner FROM run WHERE status = 'succeeded' AND remaining_steps = 0)
    SELECT (SELECT count(*) FROM promoted WHERE status = 'ready'),
      (SELECT coalesce(jsonb_agg(workflow), '[]') FROM run
        WHERE status = 'succeeded' AND remaining_steps = 0),
      (SELECT coalesce(jsonb_agg(id), '[]') FROM run
        WHERE status = 'succeeded' AND remaining_steps = 0),
      (SELECT count(*) FROM input i WHERE i.wrote AND NOT EXISTS (
        SELECT 1 FROM done d WHERE d.run_id = i.run_id AND d.step_key = i.step_key))
    INTO v_promoted, v_succeeded, v_succeeded_ids, v_lost;
    IF v_lost > 0 THEN
      RAISE EXCEPTION '% step(s) of this batch are no longer held by %', v_lost, p_owner
        USING ERRCODE = 'CFL01';
    END IF;
  END IF;
  IF cardinality(p_waiting) > 0 THEN
    UPDATE workflow_run SET status = 'waiting' WHERE id = ANY (p_waiting) AND status = 'running';
  END IF;
  IF jsonb_array_length(p_logs) > 0 THEN
    INSERT INTO log_record (level, message, workflow, run_id, step, attempt, fields)
    SELECT level, message, workflow, run_id, step, attempt, coalesce(fields, '{}')
    FROM jsonb_to_recordset(p_logs) AS x(level smallint, message text, workflow text,
      run_id bigint, step text, attempt int, fields jsonb);
  END IF;
  IF p_claim > 0 THEN
    SELECT coalesce(jsonb_agg(to_jsonb(c)), '[]') INTO v_claimed
    FROM step_claim(p_owner, p_lease_ms, p_claim, p_keyed, false) c;
  END IF;
  RETURN jsonb_build_object('promoted', v_promoted, 'succeeded', v_succeeded,
                            'succeeded_ids', v_succeeded_ids,
                            'claimed', v_claimed);
END
$$;
