-- Child workflows (issue #18 part 3): a step with `workflow: name` starts a run of that workflow
-- and waits for its end. The child run names its parent run, the step and the step's attempt
-- that started it; one attempt starts at most one child (the unique index), and the child's
-- event is deduplicated by the same three (store/child_run_store.cpp).
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
ALTER TABLE workflow_run
  ADD COLUMN parent_run_id  bigint REFERENCES workflow_run (id),
  ADD COLUMN parent_step    text,
  ADD COLUMN parent_attempt integer,
  ADD CONSTRAINT workflow_run_parent_check
    CHECK ((parent_run_id IS NULL) = (parent_step IS NULL)
           AND (parent_run_id IS NULL) = (parent_attempt IS NULL));
CREATE UNIQUE INDEX workflow_run_parent_idx ON workflow_run (parent_run_id, parent_step, parent_attempt)
  WHERE parent_run_id IS NOT NULL;

-- The parent's step is woken by whatever ends the child (a step's commit, a failed step, an
-- expired lease, an operator's cancel or fail), in that same transaction: a trigger, because
-- each of those paths ends a run its own way, and a wake-up left to any one of them could be
-- lost by another. The step becomes ready with wake {"kind": "child", ...}; the engine then
-- finishes it as the child ended (runtime/engine.cpp). Only the latest child of the step wakes
-- it, and only while it waits: a cancelled parent's steps are no longer waiting.
CREATE FUNCTION child_run_ended() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  v_outputs jsonb;
BEGIN
  IF EXISTS (SELECT 1 FROM workflow_run c WHERE c.parent_run_id = NEW.parent_run_id
             AND c.parent_step = NEW.parent_step AND c.parent_attempt > NEW.parent_attempt) THEN
    RETURN NULL;
  END IF;
  -- A for_each element's row ("step[i]") is part of its step's output, not an output of its own.
  IF NEW.status = 'succeeded' THEN
    SELECT coalesce(jsonb_object_agg(s.step_key, s.output), '{}') INTO v_outputs
      FROM step_run s
      WHERE s.run_id = NEW.id AND s.status = 'succeeded' AND position('[' IN s.step_key) = 0;
  END IF;
  UPDATE step_run SET status = 'ready', run_at = now(), wait_signal = NULL, wait_until = NULL,
      wake = jsonb_build_object('kind', 'child', 'run_id', NEW.id, 'status', NEW.status,
                                'output', v_outputs)
    WHERE run_id = NEW.parent_run_id AND step_key = NEW.parent_step AND status = 'waiting';
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  INSERT INTO run_history (run_id, type, step, detail)
    VALUES (NEW.parent_run_id, 'signalled', NEW.parent_step,
            jsonb_build_object('child_run_id', NEW.id, 'status', NEW.status));
  UPDATE workflow_run SET status = 'running'
    WHERE id = NEW.parent_run_id AND status = 'waiting'
      AND NOT EXISTS (SELECT 1 FROM step_run WHERE run_id = NEW.parent_run_id
                      AND status = 'waiting');
  PERFORM pg_notify('chartflow_wakeup_' || current_schema(), '');
  RETURN NULL;
END
$$;

CREATE TRIGGER workflow_run_child_ended AFTER UPDATE OF status ON workflow_run
  FOR EACH ROW
  WHEN (NEW.parent_run_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status
        AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
  EXECUTE FUNCTION child_run_ended();
