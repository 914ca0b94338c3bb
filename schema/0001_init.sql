-- Engine tables. Handlers never touch these; they write their own tables through the step's
-- transaction (see schema/0002_*).

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

-- One row per step per run: both the step's state and the work queue entry for it.
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
CREATE INDEX step_run_running_idx ON step_run (lease_expires_at) WHERE status = 'running';
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
