-- Parked steps (issue #15 item 7, issue #17 item 2): a step with `on_exhausted: park` whose
-- attempts ran out is 'parked' instead of 'failed'. It holds no lease and is never claimed (the
-- claim takes only 'ready' and 'retrying' steps); its run is 'parked' while any of its steps is,
-- until an operator retries the step (it gets a fresh attempt budget), skips it with a reason
-- (its dependents then run) or fails it (the run fails as exhaustion did before).
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
--
-- The new checks admit every value the old ones did, so no existing row can fail them; adding
-- one still reads the table once, under the migration's lock.
ALTER TABLE workflow_run DROP CONSTRAINT workflow_run_status_check,
  ADD CONSTRAINT workflow_run_status_check
    CHECK (status IN ('pending', 'running', 'waiting', 'parked', 'succeeded', 'failed',
                      'cancelled'));

ALTER TABLE step_run DROP CONSTRAINT step_run_status_check,
  ADD CONSTRAINT step_run_status_check CHECK (status IN ('pending', 'ready', 'running',
    'retrying', 'waiting', 'parked', 'succeeded', 'failed', 'skipped', 'cancelled'));
-- When the step parked (the parked view sorts by it and shows how long the run has waited) and,
-- once an operator skipped it, why: the reason is required and kept with the step.
ALTER TABLE step_run ADD COLUMN parked_at timestamptz, ADD COLUMN skip_reason text;
-- The parked view and the chartflow_steps_parked gauge read parked steps only; there are few.
CREATE INDEX step_run_parked_idx ON step_run (parked_at) WHERE status = 'parked';

ALTER TABLE run_history DROP CONSTRAINT run_history_type_check,
  ADD CONSTRAINT run_history_type_check CHECK (type IN ('scheduled', 'started', 'succeeded',
    'failed', 'retried', 'waiting', 'signalled', 'skipped', 'cancelled', 'timed_out',
    'lease_expired', 'parked'));
