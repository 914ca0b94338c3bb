-- Authentication and the audit trail (issue #6): API tokens, dashboard users and sessions,
-- one-time sign-in codes, and an append-only, hash-chained audit_event table.
-- Secrets (tokens, session ids, sign-in codes) are stored only as hex SHA-256 hashes; passwords
-- only as Argon2id hashes.

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
-- hash = sha256(previous record's hash || 0x1e || canonical text of this record), computed by
-- the trigger below under a lock held until commit, so ids, chain order and commit order agree.
CREATE SEQUENCE audit_event_id_seq;
CREATE TABLE audit_event (
  id             bigint PRIMARY KEY,  -- drawn by the trigger, under its lock
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
  CONSTRAINT audit_event_outcome_valid CHECK (outcome IN ('success', 'failure', 'denied'))
);
CREATE INDEX audit_event_at_idx ON audit_event (at);

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
DECLARE
  prev text;
BEGIN
  -- One writer at a time until commit: the id is drawn under the lock so that id order is
  -- chain order even when transactions commit in another order than they started.
  PERFORM pg_advisory_xact_lock(7210373, hashtext(current_schema())::int);
  NEW.id := nextval('audit_event_id_seq');
  NEW.at := clock_timestamp();
  SELECT hash INTO prev FROM audit_event ORDER BY id DESC LIMIT 1;
  NEW.hash := encode(sha256(convert_to(coalesce(prev, '') || chr(30) ||
                                       audit_event_canonical(NEW), 'UTF8')), 'hex');
  RETURN NEW;
END
$$;

CREATE TRIGGER audit_event_chain BEFORE INSERT ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_chain();

CREATE FUNCTION audit_event_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only: % is not allowed', TG_OP;
END
$$;

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_reject_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION audit_event_reject_change();
