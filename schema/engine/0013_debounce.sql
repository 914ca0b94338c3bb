-- Debounced starts (issue #17 item 4): a trigger with `debounce: { key, window, max_wait }`
-- does not start a run per event. Each event is stored as it arrives (table event) and, in the
-- same transaction, upserts the one pending start of its workflow and key value here: the
-- latest event, and the run planned for it. The start is due `window` after the latest event,
-- but never later than `max_wait` after the first one (due_at = least(now() + window,
-- first_seen + max_wait)). The engine's dispatcher, in every chartflow process, starts due rows
-- in a transaction that deletes the row and creates the run (FOR UPDATE SKIP LOCKED), so each
-- pending start runs exactly once, and one accepted before a crash still runs after it.
--
-- key_value is the value at the trigger's key pointer in the event (e.g. a chart id): kept no
-- longer than the window, never logged.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
CREATE TABLE debounce_pending (
  workflow             text NOT NULL,
  key_value            text NOT NULL,
  -- The latest event, whose body the run gets, and the run as planned for it.
  event_id             bigint NOT NULL REFERENCES event (id),
  workflow_version_id  bigint NOT NULL REFERENCES workflow_version (id),
  subject              text,
  step_count           integer NOT NULL CHECK (step_count > 0),
  steps                jsonb NOT NULL,
  events               integer NOT NULL DEFAULT 1 CHECK (events > 0),  -- coalesced so far
  first_seen           timestamptz NOT NULL DEFAULT now(),
  due_at               timestamptz NOT NULL,
  PRIMARY KEY (workflow, key_value)
);
-- The dispatcher's probe and the start of due rows read the earliest first.
CREATE INDEX debounce_pending_due_idx ON debounce_pending (due_at);
