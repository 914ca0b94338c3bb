-- Traces (issue #18 part 4): every event belongs to a W3C trace. A door that receives a valid
-- `traceparent` (HTTP header, S3 object metadata) stores its trace id and the caller's span id;
-- any other event gets a fresh random trace id here, so schedules, the drop folder and whatever
-- a later door adds start a trace without code of their own. A run's trace is its event's (a
-- run has exactly one event; a debounced run the last of its events), and a run started by
-- another run's end joins that run's trace (the run-end event carries it, with the ending
-- run's root span as the caller's span). Span ids are derived from the run id, step and
-- attempt (engine/core/trace.hpp), so nothing per step is stored.
--
-- Rows older than this migration keep NULL: no trace was recorded for them.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
-- NOT VALID: the checks hold for every new row without scanning the existing ones (all NULL)
-- under this statement's exclusive lock.
ALTER TABLE event ADD COLUMN trace_id text,
  ADD COLUMN trace_parent text,
  ADD CONSTRAINT event_trace_id_format CHECK (trace_id ~ '^[0-9a-f]{32}$') NOT VALID,
  ADD CONSTRAINT event_trace_parent_format CHECK (trace_parent ~ '^[0-9a-f]{16}$') NOT VALID;
-- A new trace id: 122 random bits of a version 4 UUID, which is plenty for a trace id. The
-- ingest statements call it for events that came without a trace (coalesce), and it is the
-- column's default for any other insert.
CREATE FUNCTION trace_id_new() RETURNS text LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$ SELECT replace(gen_random_uuid()::text, '-', '') $$;
-- Set apart from ADD COLUMN so existing rows are not rewritten (a volatile default would).
ALTER TABLE event ALTER COLUMN trace_id SET DEFAULT trace_id_new();
