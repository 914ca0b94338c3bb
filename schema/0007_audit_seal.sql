-- Audit records no longer wait in line: 0003 drew each record's id and hash under one lock held
-- until its transaction committed, so every audited action (each chart upload, each review
-- decision) committed one after another. Now a record is inserted unsealed (seq NULL, hash '')
-- without any lock, and a sealer chains the records already committed, in the order it finds
-- them (seq), shortly after: `audit_event_seal()`, called by the server about once a second
-- after audited writes, and before every verify and audit read.
--
-- hash = sha256(hash of record seq-1 || 0x1e || canonical text of this record), as before; the
-- records 0003 chained in id order keep their hashes and get seq in that order.

ALTER TABLE audit_event ADD COLUMN seq bigint;

ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only;
UPDATE audit_event a SET seq = o.n
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_event) o WHERE o.id = a.id;
ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only;

CREATE UNIQUE INDEX audit_event_seq_idx ON audit_event (seq);
CREATE INDEX audit_event_unsealed_idx ON audit_event (id) WHERE seq IS NULL;

CREATE OR REPLACE FUNCTION audit_event_chain() RETURNS trigger
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

-- The one change a record may see: its seal, once, touching nothing else.
CREATE OR REPLACE FUNCTION audit_event_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash <> ''
     AND (to_jsonb(NEW) - 'seq' - 'hash') = (to_jsonb(OLD) - 'seq' - 'hash') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_event is append-only: % is not allowed', TG_OP;
END
$$;

-- Chains every committed unsealed record after the current head; returns how many it sealed.
-- Sealers take turns on the lock the writers used to hold; records committed while one seals
-- are left for the next.
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
