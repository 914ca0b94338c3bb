-- A wake-up that never waits (engine/signals.hpp wake_run). Its callers are steps in the middle
-- of a worker's batch (a FHIR topic published by a review wakes each subscription's deliverer):
-- run_signal_deliver there waited for the woken run's row and its waiting step's row, out of
-- the id order step_commit locks runs in, and two such transactions deadlocked (a review
-- decision publishing while the deliverer's own step changed state). run_wake takes both rows
-- only when no other transaction holds them (SKIP LOCKED), so it joins no lock cycle. A held
-- row means the run is being woken or committed by someone else: 'busy', and what the caller
-- wrote is read at the run's next look (its poll at the latest).
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
CREATE FUNCTION run_wake(p_run_id bigint, p_name text)
RETURNS text
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_sort = off SET jit = off
AS $$
DECLARE
  v_status text;
  v_step text;
BEGIN
  SELECT status INTO v_status FROM workflow_run WHERE id = p_run_id
    FOR NO KEY UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN 'busy';
  END IF;
  IF v_status IN ('succeeded', 'failed', 'cancelled') THEN
    RETURN 'ended:' || v_status;
  END IF;
  SELECT step_key INTO v_step FROM step_run
    WHERE run_id = p_run_id AND status = 'waiting' AND wait_signal = p_name
    ORDER BY step_key LIMIT 1 FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM step_run WHERE run_id = p_run_id AND status = 'waiting'
               AND wait_signal = p_name) THEN
      RETURN 'busy';
    END IF;
    -- A wake-up only: one kept and not yet consumed is enough.
    IF EXISTS (SELECT 1 FROM run_signal WHERE run_id = p_run_id AND name = p_name
               AND consumed_by IS NULL) THEN
      RETURN 'pending';
    END IF;
    INSERT INTO run_signal (run_id, name, payload) VALUES (p_run_id, p_name, '{}'::jsonb);
    INSERT INTO run_history (run_id, type, detail)
      VALUES (p_run_id, 'signalled', jsonb_build_object('signal', p_name, 'stored', true));
    RETURN 'stored';
  END IF;
  UPDATE step_run SET status = 'ready', run_at = now(),
    wake = jsonb_build_object('kind', 'signal', 'signal', p_name, 'payload', '{}'::jsonb),
    wait_signal = NULL, wait_until = NULL
    WHERE run_id = p_run_id AND step_key = v_step;
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
