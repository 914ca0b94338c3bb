-- Reprocessing runs (issue #17, item 3): an operator selects finished (or stuck) runs and starts
-- a new run of the same workflow, at its latest version, for each one's original event.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
--
-- The job is resolved into its runs when it is created (reprocess_item), so what it covers does
-- not drift while it goes, and batches started, progress and a cancel are rows: they survive a
-- restart and any process may start the next batch (FOR UPDATE SKIP LOCKED on the job row).
-- No window limit: a selection may reach back as far as the runs are kept.
CREATE TABLE reprocess_job (
  id          bigserial PRIMARY KEY,
  workflow    text NOT NULL,
  selection   jsonb NOT NULL,               -- as the operator gave it (ids and times only)
  flags       jsonb NOT NULL DEFAULT '{}',  -- {"resend", "force", "reason"}: handed to handlers
  batch_size  integer NOT NULL CHECK (batch_size BETWEEN 1 AND 1000),
  status      text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'cancelled', 'done')),
  total       integer NOT NULL DEFAULT 0,
  started     integer NOT NULL DEFAULT 0,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX reprocess_job_running_idx ON reprocess_job (id) WHERE status = 'running';

-- One selected run of a job; new_run_id is set in the batch that starts its new run. No foreign
-- key to workflow_run: retention may drop old runs without asking the jobs that reprocessed them.
CREATE TABLE reprocess_item (
  job_id        bigint NOT NULL REFERENCES reprocess_job (id) ON DELETE CASCADE,
  source_run_id bigint NOT NULL,
  new_run_id    bigint,
  PRIMARY KEY (job_id, source_run_id)
);
CREATE INDEX reprocess_item_todo_idx ON reprocess_item (job_id, source_run_id)
  WHERE new_run_id IS NULL;
-- A step's handler asks whether its run is a reprocess (StepContext::rerun) by this.
CREATE UNIQUE INDEX reprocess_item_new_run_idx ON reprocess_item (new_run_id)
  WHERE new_run_id IS NOT NULL;

-- The new run's 'scheduled' history entry names the run it reprocesses and the job
-- (detail reprocess_of, reprocess_job): no new history type.
