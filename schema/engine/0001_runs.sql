-- The engine's own tables: workflow versions, events, runs and their steps (the work queue),
-- run history, signals and log records. Handlers never touch these; an application writes its
-- own tables (schema/charts/ for the chart application) through the step's transaction.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
-- (Files 0001-0004 squash the pre-release schema/0001-0017 into their final definitions.)

CREATE TABLE workflow_version (
  id             bigserial PRIMARY KEY,
  name           text NOT NULL,
  version        integer NOT NULL,
  content_hash   text NOT NULL,
  definition     jsonb NOT NULL,
  source_file    text NOT NULL DEFAULT '',
  created_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT workflow_version_name_version_key UNIQUE (name, version),
  CONSTRAINT workflow_version_name_hash_key UNIQUE (name, content_hash)
);

CREATE TABLE event (
  id          bigserial PRIMARY KEY,
  type        text NOT NULL,
  dedup_key   text,
  body        jsonb NOT NULL,
  source      text NOT NULL DEFAULT 'api',
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT event_type_length CHECK (length(type) BETWEEN 1 AND 200)
);
-- The same dedup key twice starts nothing new: the second insert conflicts here.
CREATE UNIQUE INDEX event_dedup_idx ON event (type, dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE workflow_run (
  id                   bigserial PRIMARY KEY,
  workflow_version_id  bigint NOT NULL REFERENCES workflow_version (id),
  workflow             text NOT NULL,
  event_id             bigint NOT NULL REFERENCES event (id),
  status               text NOT NULL DEFAULT 'pending',
  -- Steps not yet succeeded/skipped; the run succeeds when it reaches zero.
  remaining_steps      integer NOT NULL,
  subject              text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  started_at           timestamptz,
  finished_at          timestamptz,
  error                text,
  CONSTRAINT workflow_run_status_check
    CHECK (status IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'))
);
CREATE INDEX workflow_run_list_idx ON workflow_run (created_at DESC, id DESC);
CREATE INDEX workflow_run_workflow_idx ON workflow_run (workflow, created_at DESC, id DESC);
CREATE INDEX workflow_run_status_idx ON workflow_run (status, created_at DESC, id DESC);
CREATE INDEX workflow_run_event_idx ON workflow_run (event_id);
CREATE INDEX workflow_run_subject_idx ON workflow_run (subject, created_at DESC) WHERE subject IS NOT NULL;
-- The dashboard's runs list filters by workflow and status and pages newest first by id
-- (store/query_store.cpp: list_runs). With only the created_at-ordered indexes, a workflow and
-- status that match few or no runs made PostgreSQL walk the primary key backwards over every
-- run (85 ms at 100,000 runs, growing with the table; `chartflow bench-dashboard`); this index
-- answers them in the list's own order.
CREATE INDEX workflow_run_workflow_status_idx ON workflow_run (workflow, status, id DESC);

-- One row per step per run: both the step's state and the work queue entry for it. The queue's
-- statements are the functions in 0002_queue.sql.
CREATE TABLE step_run (
  run_id              bigint NOT NULL REFERENCES workflow_run (id),
  step_key            text NOT NULL,
  handler             text NOT NULL,
  status              text NOT NULL,
  needs               jsonb NOT NULL DEFAULT '[]',
  pending_needs       integer NOT NULL,
  attempt             integer NOT NULL DEFAULT 0,
  max_attempts        integer NOT NULL,
  run_at              timestamptz NOT NULL DEFAULT now(),
  lease_owner         text,
  lease_expires_at    timestamptz,
  deadline_at         timestamptz,
  timeout_ms          integer NOT NULL,
  concurrency_key     text,
  concurrency_limit   integer,
  wait_signal         text,
  wait_until          timestamptz,
  wake                jsonb,
  output              jsonb,
  error               text,
  started_at          timestamptz,
  finished_at         timestamptz,
  PRIMARY KEY (run_id, step_key),
  CONSTRAINT step_run_status_check CHECK (status IN ('pending', 'ready', 'running', 'retrying',
    'waiting', 'succeeded', 'failed', 'skipped', 'cancelled'))
);
-- Matches the claim predicate exactly, so claiming reads only due rows.
CREATE INDEX step_run_claim_idx ON step_run (run_at) WHERE status IN ('ready', 'retrying');
-- For the lease and deadline scans only. lease_expires_at IS NOT NULL holds for every running
-- step (the claim sets it), but only a statement that says so can use this index: a lookup by
-- key with status = 'running' then goes by the primary key. When this index matched such a
-- lookup too, a plan made while step_run's statistics called it empty took it (one row, the
-- planner believed) and every call read every running step in the table.
CREATE INDEX step_run_running_idx ON step_run (lease_expires_at)
  WHERE status = 'running' AND lease_expires_at IS NOT NULL;
CREATE INDEX step_run_waiting_idx ON step_run (wait_until) WHERE status = 'waiting';
CREATE INDEX step_run_concurrency_idx ON step_run (concurrency_key)
  WHERE status = 'running' AND concurrency_key IS NOT NULL;

CREATE TABLE run_history (
  id          bigserial PRIMARY KEY,
  run_id      bigint NOT NULL REFERENCES workflow_run (id),
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  type        text NOT NULL,
  step        text,
  attempt     integer,
  worker      text,
  detail      jsonb,
  CONSTRAINT run_history_type_check CHECK (type IN ('scheduled', 'started', 'succeeded', 'failed',
    'retried', 'waiting', 'signalled', 'skipped', 'cancelled', 'timed_out', 'lease_expired'))
);
CREATE INDEX run_history_run_idx ON run_history (run_id, id);

-- Signals sent to a run; kept so one that arrives before its step waits is not lost.
CREATE TABLE run_signal (
  id          bigserial PRIMARY KEY,
  run_id      bigint NOT NULL REFERENCES workflow_run (id),
  name        text NOT NULL,
  payload     jsonb NOT NULL DEFAULT '{}',
  consumed_by text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_signal_pending_idx ON run_signal (run_id, name) WHERE consumed_by IS NULL;

CREATE TABLE log_record (
  id        bigserial PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  level     smallint NOT NULL,
  workflow  text,
  run_id    bigint,
  step      text,
  attempt   integer,
  message   text NOT NULL,
  fields    jsonb NOT NULL DEFAULT '{}',
  CONSTRAINT log_record_level_check CHECK (level BETWEEN 0 AND 3)
);
CREATE INDEX log_record_at_idx ON log_record (at, level);
CREATE INDEX log_record_run_idx ON log_record (run_id, at) WHERE run_id IS NOT NULL;

-- Every large value compressed with lz4: event bodies, step outputs, history details and the
-- like pass TOAST's threshold, and lz4 compresses several times faster than the default pglz
-- for a similar size (pglz was the largest single cost left in a chart's database time). A
-- server built without lz4 keeps pglz.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT a.attrelid::regclass AS tbl, a.attname AS col
    FROM pg_attribute a
    JOIN pg_class t ON t.oid = a.attrelid
    WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'
      AND t.relname IN ('workflow_version', 'event', 'workflow_run', 'step_run', 'run_history',
                        'run_signal', 'log_record')
      AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('json'::regtype, 'jsonb'::regtype, 'text'::regtype, 'bytea'::regtype)
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', c.tbl, c.col);
  END LOOP;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; values stay pglz-compressed';
END
$$;
