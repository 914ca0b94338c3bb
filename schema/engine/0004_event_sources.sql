-- Event sources: the state of schedules and the objects put through the S3-compatible API.
-- Engine tables, written only by the engine's event sources.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.

-- Schedules: the latest tick each schedule has fired, shared by every process. A tick's event
-- carries the dedup key (workflow, scheduled time), which is what makes it fire once; this row
-- tells a process that starts after an outage which ticks it missed.
CREATE TABLE schedule_state (
  schedule_key  text PRIMARY KEY,  -- workflow | cron expression | time zone
  workflow      text NOT NULL,
  last_tick     timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Objects put through the S3-compatible API. The content is kept here (bytea) so GET and HEAD
-- answer from PostgreSQL; a put replaces the object under its key. Written in the transaction
-- that stores the put's event (object.created or chart.uploaded).
CREATE TABLE s3_object (
  bucket        text NOT NULL,
  key           text NOT NULL,
  size          bigint NOT NULL,
  sha256        text NOT NULL,
  etag          text NOT NULL,  -- MD5 hex, as S3 clients check it
  content_type  text NOT NULL,
  content       bytea NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bucket, key),
  CONSTRAINT s3_object_key_length CHECK (octet_length(key) BETWEEN 1 AND 1024),
  CONSTRAINT s3_object_bucket_format CHECK (bucket ~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')
);

-- Every large value compressed with lz4 (see 0001_runs.sql), S3 objects above all: lz4
-- compresses them several times faster than pglz, and that compression ran in every put's
-- transaction. A server built without lz4 keeps pglz.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT a.attrelid::regclass AS tbl, a.attname AS col
    FROM pg_attribute a
    JOIN pg_class t ON t.oid = a.attrelid
    WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'
      AND t.relname IN ('schedule_state', 's3_object')
      AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('json'::regtype, 'jsonb'::regtype, 'text'::regtype, 'bytea'::regtype)
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', c.tbl, c.col);
  END LOOP;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; values stay pglz-compressed';
END
$$;
