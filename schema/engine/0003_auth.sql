-- Authentication and the audit trail: API tokens, dashboard users and sessions, one-time
-- sign-in codes, and an append-only, hash-chained audit_event table.
-- Secrets (tokens, session ids, sign-in codes) are stored only as hex SHA-256 hashes; passwords
-- only as Argon2id hashes.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.

CREATE TABLE api_token (
  id            bigserial PRIMARY KEY,
  name          text NOT NULL,
  role          text NOT NULL,
  -- The practitioner a reviewer token acts as (review.assignee); NULL for other roles.
  assignee      text,
  token_hash    text NOT NULL,
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,
  revoked_at    timestamptz,
  CONSTRAINT api_token_role_valid
    CHECK (role IN ('uploader', 'reviewer', 'billing', 'operator', 'admin')),
  CONSTRAINT api_token_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$'),
  CONSTRAINT api_token_reviewer_assignee CHECK (role <> 'reviewer' OR assignee IS NOT NULL),
  CONSTRAINT api_token_assignee_length CHECK (length(assignee) BETWEEN 1 AND 300),
  CONSTRAINT api_token_hash_key UNIQUE (token_hash)
);
-- A name identifies one live token (`chartflow tokens revoke NAME`); revoked names may be reused.
CREATE UNIQUE INDEX api_token_live_name_idx ON api_token (name) WHERE revoked_at IS NULL;

CREATE TABLE app_user (
  name           text PRIMARY KEY,
  role           text NOT NULL,
  assignee       text,
  password_hash  text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  disabled_at    timestamptz,
  CONSTRAINT app_user_role_valid
    CHECK (role IN ('uploader', 'reviewer', 'billing', 'operator', 'admin')),
  CONSTRAINT app_user_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$'),
  CONSTRAINT app_user_reviewer_assignee CHECK (role <> 'reviewer' OR assignee IS NOT NULL)
);

-- A dashboard session (HttpOnly cookie). `subject` is the credential it was opened with
-- ("token:7", "user:alice", "signin-code:1").
CREATE TABLE web_session (
  id_hash     text PRIMARY KEY,
  csrf_token  text NOT NULL,
  subject     text NOT NULL,
  name        text NOT NULL,
  role        text NOT NULL,
  assignee    text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  ended_at    timestamptz
);
CREATE INDEX web_session_expiry_idx ON web_session (expires_at);

-- First start: a code redeemable once for an admin session, printed as a sign-in link.
CREATE TABLE signin_code (
  id          bigserial PRIMARY KEY,
  code_hash   text NOT NULL UNIQUE,
  role        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);

-- Who did what to which resource, when, from where, with what outcome. Never content.
--
-- Records do not wait in line: a record is inserted unsealed (seq NULL, hash '') without any
-- lock, so audited actions (each upload, each review decision) commit side by side, and a
-- sealer chains the records already committed, in the order it finds them (seq), shortly after:
-- audit_event_seal(), called by the server about once a second after audited writes, and before
-- every verify and audit read.
-- hash = sha256(hash of record seq-1 || 0x1e || canonical text of this record).
CREATE SEQUENCE audit_event_id_seq;
CREATE TABLE audit_event (
  id             bigint PRIMARY KEY,  -- drawn by the chain trigger, never by the writer
  at             timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor          text NOT NULL,
  actor_name     text,
  role           text,
  action         text NOT NULL,
  resource_type  text,
  resource_id    text,
  remote         text,
  outcome        text NOT NULL,
  detail         jsonb NOT NULL DEFAULT '{}',
  hash           text NOT NULL DEFAULT '',
  seq            bigint,  -- position in the chain; NULL until sealed
  CONSTRAINT audit_event_outcome_valid CHECK (outcome IN ('success', 'failure', 'denied'))
);
CREATE INDEX audit_event_at_idx ON audit_event (at);
CREATE UNIQUE INDEX audit_event_seq_idx ON audit_event (seq);
CREATE INDEX audit_event_unsealed_idx ON audit_event (id) WHERE seq IS NULL;
-- Sign-in throttling counts recent failed sign-ins by remote address and by user name from the
-- audit trail; this keeps that count to the failures instead of every audited action.
CREATE INDEX audit_event_signin_failure_idx ON audit_event (at)
  WHERE action = 'auth.signin' AND outcome = 'failure';

CREATE FUNCTION audit_event_canonical(e audit_event) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT concat_ws(chr(31), e.id::text,
                   to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), e.actor,
                   coalesce(e.actor_name, ''), coalesce(e.role, ''), e.action,
                   coalesce(e.resource_type, ''), coalesce(e.resource_id, ''),
                   coalesce(e.remote, ''), e.outcome, e.detail::text)
$$;

CREATE FUNCTION audit_event_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- Whatever the writer sent, a new record starts unsealed with the server's id and time.
  NEW.id := nextval('audit_event_id_seq');
  NEW.at := clock_timestamp();
  NEW.seq := NULL;
  NEW.hash := '';
  RETURN NEW;
END
$$;

CREATE TRIGGER audit_event_chain BEFORE INSERT ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_chain();

-- The one change a record may see: its seal, once, touching nothing else.
CREATE FUNCTION audit_event_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash <> ''
     AND (to_jsonb(NEW) - 'seq' - 'hash') = (to_jsonb(OLD) - 'seq' - 'hash') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_event is append-only: % is not allowed', TG_OP;
END
$$;

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_reject_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION audit_event_reject_change();

-- Chains every committed unsealed record after the current head; returns how many it sealed.
-- Sealers take turns on an advisory lock per schema; records committed while one seals are
-- left for the next.
CREATE FUNCTION audit_event_seal() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  prev text;
  prev_seq bigint;
  r audit_event;
  n integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(7210373, hashtext(current_schema())::int);
  SELECT hash, seq INTO prev, prev_seq FROM audit_event WHERE seq IS NOT NULL
    ORDER BY seq DESC LIMIT 1;
  prev_seq := coalesce(prev_seq, 0);
  FOR r IN SELECT * FROM audit_event WHERE seq IS NULL ORDER BY id LOOP
    prev_seq := prev_seq + 1;
    prev := encode(sha256(convert_to(coalesce(prev, '') || chr(30) || audit_event_canonical(r),
                                     'UTF8')), 'hex');
    UPDATE audit_event SET seq = prev_seq, hash = prev WHERE id = r.id;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

-- Every large value compressed with lz4 (see 0001_runs.sql). A server built without lz4 keeps
-- pglz.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT a.attrelid::regclass AS tbl, a.attname AS col
    FROM pg_attribute a
    JOIN pg_class t ON t.oid = a.attrelid
    WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'
      AND t.relname IN ('api_token', 'app_user', 'web_session', 'signin_code', 'audit_event')
      AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('json'::regtype, 'jsonb'::regtype, 'text'::regtype, 'bytea'::regtype)
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', c.tbl, c.col);
  END LOOP;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; values stay pglz-compressed';
END
$$;
