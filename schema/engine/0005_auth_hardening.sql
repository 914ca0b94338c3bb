-- Sessions that end with their credential and after an idle time, sign-in throttling per
-- (user name, client address) pair, and refused unauthenticated attempts counted per (source,
-- minute) instead of an audit record each (issue #14: items 8, 10 and 12).
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.

-- When the session was last used: a session idle for longer than the server's idle timeout
-- (default 15 minutes) is over. Touched at most every few seconds, not on every request.
ALTER TABLE web_session ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
-- `chartflow users disable` and `tokens revoke` end the sessions opened with the credential.
CREATE INDEX web_session_subject_idx ON web_session (subject) WHERE ended_at IS NULL;

-- Failed sign-ins per (user name, client address): after a few failures each further attempt of
-- that pair waits longer, so guessing one user's password from one address is slowed without
-- locking the user out for everyone else. `name` is '' for token and code sign-ins. A row is
-- deleted at the pair's next successful sign-in and forgotten 15 minutes after its last failure.
CREATE TABLE signin_failure (
  name             text NOT NULL,
  remote           text NOT NULL,
  failures         integer NOT NULL,
  last_failure_at  timestamptz NOT NULL,
  PRIMARY KEY (name, remote)
);
CREATE INDEX signin_failure_remote_idx ON signin_failure (remote, last_failure_at);

-- Refused unauthenticated attempts (unknown bearer tokens, failed and throttled sign-ins) are
-- counted here, one row per (action, outcome, source address, minute), instead of writing an
-- audit record each: whoever sends them does not get to grow the undeletable audit_event table.
-- Sealing folds every bucket of a minute that is over into one audit_event record (detail: count,
-- first and last time, a sample path cut to 256 characters, the user names tried) and deletes
-- the bucket; until then this table is the only place they are.
CREATE TABLE audit_refusal (
  action    text NOT NULL,
  outcome   text NOT NULL,
  remote    text NOT NULL,
  minute    timestamptz NOT NULL,
  count     bigint NOT NULL DEFAULT 1,
  first_at  timestamptz NOT NULL DEFAULT now(),
  last_at   timestamptz NOT NULL DEFAULT now(),
  reason    text,
  path      text,
  names     text[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (action, outcome, remote, minute)
);

-- Sign-in throttling no longer counts failures in the audit trail.
DROP INDEX audit_event_signin_failure_idx;

DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT a.attrelid::regclass AS tbl, a.attname AS col
    FROM pg_attribute a
    JOIN pg_class t ON t.oid = a.attrelid
    WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'
      AND t.relname IN ('signin_failure', 'audit_refusal')
      AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('json'::regtype, 'jsonb'::regtype, 'text'::regtype, 'bytea'::regtype)
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', c.tbl, c.col);
  END LOOP;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; values stay pglz-compressed';
END
$$;
