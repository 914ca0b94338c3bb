-- A step starting to wait, and a signal reaching a run, each in one statement instead of four or
-- five round trips: every chart's review does both once.

-- The step (held by p_owner at p_attempt) waits for signal p_signal and/or until p_until_ms
-- (epoch ms). A signal that arrived before the step started waiting is consumed at once and the
-- step is ready again. Returns 'lost' (the step is no longer this owner's: nothing is written),
-- 'signalled' or 'waiting'. The run row is not touched here: the batch's step_commit marks the
-- run waiting, after its other finishes and with the run rows locked in id order (a run row
-- locked here, mid-batch, could deadlock with another batch's ordered locks).
CREATE OR REPLACE FUNCTION step_wait(p_run_id bigint, p_step_key text, p_owner text,
                                     p_attempt int, p_signal text, p_until_ms bigint)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_payload jsonb;
BEGIN
  PERFORM 1 FROM step_run
    WHERE run_id = p_run_id AND step_key = p_step_key AND lease_owner = p_owner
      AND attempt = p_attempt AND status = 'running'
    FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'lost';
  END IF;
  IF p_signal IS NOT NULL THEN
    UPDATE run_signal SET consumed_by = p_step_key
      WHERE id = (SELECT id FROM run_signal
                  WHERE run_id = p_run_id AND name = p_signal AND consumed_by IS NULL
                  ORDER BY id LIMIT 1 FOR UPDATE)
      RETURNING payload INTO v_payload;
    IF FOUND THEN
      UPDATE step_run SET status = 'ready', run_at = now(), lease_owner = NULL,
        wake = jsonb_build_object('kind', 'signal', 'signal', p_signal, 'payload', v_payload)
        WHERE run_id = p_run_id AND step_key = p_step_key;
      INSERT INTO run_history (run_id, type, step, attempt, worker, detail)
        VALUES (p_run_id, 'signalled', p_step_key, p_attempt, p_owner,
                jsonb_build_object('signal', p_signal));
      RETURN 'signalled';
    END IF;
  END IF;
  -- The attempt is given back: waiting is not a try that can be used up.
  UPDATE step_run SET status = 'waiting', wait_signal = p_signal,
    wait_until = to_timestamp(p_until_ms / 1000.0), lease_owner = NULL, wake = NULL,
    attempt = attempt - 1
    WHERE run_id = p_run_id AND step_key = p_step_key;
  INSERT INTO run_history (run_id, type, step, attempt, worker, detail)
    VALUES (p_run_id, 'waiting', p_step_key, p_attempt, p_owner,
            jsonb_strip_nulls(jsonb_build_object('signal', p_signal, 'until_ms', p_until_ms)));
  RETURN 'waiting';
END
$$;

-- Signal p_name with p_payload to run p_run_id: wakes the step waiting for it, or is kept for
-- the step that will. Returns 'not_found', 'ended:<status>' (the run is over: nothing is
-- written), 'delivered' or 'stored'. The run row is locked first, as every run command does.
CREATE OR REPLACE FUNCTION run_signal_deliver(p_run_id bigint, p_name text, p_payload jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
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
  UPDATE step_run SET status = 'ready', run_at = now(),
    wake = jsonb_build_object('kind', 'signal', 'signal', p_name, 'payload', p_payload),
    wait_signal = NULL, wait_until = NULL
    WHERE step_key = (SELECT step_key FROM step_run
                      WHERE run_id = p_run_id AND status = 'waiting' AND wait_signal = p_name
                      ORDER BY step_key LIMIT 1)
      AND run_id = p_run_id AND status = 'waiting'
    RETURNING step_key INTO v_step;
  IF NOT FOUND THEN
    INSERT INTO run_signal (run_id, name, payload) VALUES (p_run_id, p_name, p_payload);
    INSERT INTO run_history (run_id, type, detail)
      VALUES (p_run_id, 'signalled', jsonb_build_object('signal', p_name, 'stored', true));
    RETURN 'stored';
  END IF;
  UPDATE workflow_run SET status = 'running' WHERE id = p_run_id AND status = 'waiting';
  INSERT INTO run_history (run_id, type, step, detail)
    VALUES (p_run_id, 'signalled', v_step, jsonb_build_object('signal', p_name));
  PERFORM pg_notify('chartflow_wakeup_' || current_schema(), '');
  RETURN 'delivered';
END
$$;
