-- A run is `waiting` while any of its steps waits (issue #16: the dashboard's run list showed
-- `running` for a chart run whose only live step waited for the doctor). step_commit turned a
-- waiting run back into running whenever a sibling step finished; it now leaves a run's waiting
-- alone (the finish is the same single UPDATE with one CASE arm fewer), and a signal or timer
-- that wakes one waiting step makes the run running only when no other step still waits. A run
-- whose steps all finish succeeds from `waiting` as from `running`, as before.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
--
-- Runs left `running` by the old rule while a step waits are put right once.
UPDATE workflow_run w SET status = 'waiting'
  WHERE w.status = 'running'
    AND EXISTS (SELECT 1 FROM step_run s WHERE s.run_id = w.id AND s.status = 'waiting');

CREATE OR REPLACE FUNCTION step_commit(p_owner text, p_finishes jsonb, p_waiting bigint[],
                            p_logs jsonb, p_claim int, p_lease_ms bigint, p_keyed boolean)
RETURNS jsonb
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_sort = off SET jit = off
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
    -- The finishing steps' rows are locked first, by key, in a statement of their own: the
    -- statement below then starts with every row it changes locked by this transaction (run
    -- rows above, pending steps only change under their run's lock), so a row's ctid cannot
    -- go stale between finding it and updating it. Without this a lease renewal committed in
    -- between (the worker's heartbeat) made the update's ctid recheck fail and the finish
    -- vanish until the lease ran out.
    PERFORM (SELECT 1 FROM step_run s WHERE s.run_id = f.run_id AND s.step_key = f.step_key
             FOR NO KEY UPDATE)
      FROM jsonb_to_recordset(p_finishes) AS f(run_id bigint, step_key text);
    -- Every row below is reached from a key the batch names (a scalar subquery or a LATERAL
    -- subquery kept apart by OFFSET 0, so the planner cannot turn the join around) and updated
    -- through its ctid (a join on ctid has no plan but the TID lookup). A step whose lease
    -- another worker took over is not found by its owner and attempt, and is left alone.
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(p_finishes)
        AS x(run_id bigint, step_key text, attempt int, status text, output jsonb, wrote boolean)),
    target AS (
      SELECT i.*, (SELECT s.ctid FROM step_run s
                   WHERE s.run_id = i.run_id AND s.step_key = i.step_key
                     AND s.lease_owner = p_owner AND s.attempt = i.attempt
                     AND s.status = 'running') AS tid
      FROM input i),
    done AS (
      UPDATE step_run s SET status = t.status, output = t.output,
        finished_at = statement_timestamp(), lease_owner = NULL, wake = NULL, error = NULL
      FROM target t WHERE s.ctid = t.tid
      RETURNING s.run_id, s.step_key, s.status, s.attempt),
    released AS (
      SELECT q.tid, count(*) AS n
      FROM done CROSS JOIN LATERAL (
        SELECT p.ctid AS tid FROM step_run p
        WHERE p.run_id = done.run_id AND p.status = 'pending' AND p.needs ? done.step_key
        OFFSET 0) q
      GROUP BY q.tid),
    promoted AS (
      UPDATE step_run p SET pending_needs = p.pending_needs - r.n, run_at = now(),
        status = CASE WHEN p.pending_needs = r.n THEN 'ready' ELSE p.status END
      FROM released r WHERE p.ctid = r.tid
      RETURNING p.status),
    per_run AS (
      SELECT d.run_id, d.n, (SELECT w.ctid FROM workflow_run w WHERE w.id = d.run_id) AS tid
      FROM (SELECT run_id, count(*) AS n FROM done GROUP BY run_id) d),
    run AS (
      UPDATE workflow_run w SET remaining_steps = w.remaining_steps - pr.n,
        status = CASE WHEN w.remaining_steps = pr.n AND w.status IN ('running', 'waiting')
          THEN 'succeeded' ELSE w.status END,
        finished_at = CASE WHEN w.remaining_steps = pr.n AND w.status IN ('running', 'waiting')
          THEN statement_timestamp() ELSE w.finished_at END
      FROM per_run pr WHERE w.ctid = pr.tid
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
    -- The status test is in the SET list, not the WHERE clause, so that the primary key is the
    -- only way to these rows (the runs were locked above; one not running keeps its status).
    UPDATE workflow_run SET status = CASE WHEN status = 'running' THEN 'waiting' ELSE status END
      WHERE id = ANY (p_waiting);
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

CREATE OR REPLACE FUNCTION run_signal_deliver(p_run_id bigint, p_name text, p_payload jsonb)
RETURNS text
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_sort = off SET jit = off
AS $$
DECLARE
  v_status text;
  v_step text;
BEGIN
  -- NO KEY UPDATE: the foreign-key checks of history rows other transactions insert for this
  -- run do not hold it up.
  SELECT status INTO v_status FROM workflow_run WHERE id = p_run_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN 'not_found';
  END IF;
  IF v_status IN ('succeeded', 'failed', 'cancelled') THEN
    RETURN 'ended:' || v_status;
  END IF;
  SELECT step_key INTO v_step FROM step_run
    WHERE run_id = p_run_id AND status = 'waiting' AND wait_signal = p_name
    ORDER BY step_key LIMIT 1 FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO run_signal (run_id, name, payload) VALUES (p_run_id, p_name, p_payload);
    INSERT INTO run_history (run_id, type, detail)
      VALUES (p_run_id, 'signalled', jsonb_build_object('signal', p_name, 'stored', true));
    RETURN 'stored';
  END IF;
  UPDATE step_run SET status = 'ready', run_at = now(),
    wake = jsonb_build_object('kind', 'signal', 'signal', p_name, 'payload', p_payload),
    wait_signal = NULL, wait_until = NULL
    WHERE run_id = p_run_id AND step_key = v_step;
  -- Running again only when no other step of the run still waits (read by key: the index on
  -- (run_id, step_key) holds the run's few steps).
  IF v_status = 'waiting' AND NOT EXISTS (
      SELECT 1 FROM step_run WHERE run_id = p_run_id AND status = 'waiting') THEN
    UPDATE workflow_run SET status = 'running' WHERE id = p_run_id;
  END IF;
  INSERT INTO run_history (run_id, type, step, detail)
    VALUES (p_run_id, 'signalled', v_step, jsonb_build_object('signal', p_name));
  PERFORM pg_notify('chartflow_wakeup_' || current_schema(), '');
  RETURN 'delivered';
END
$$;
