-- The chart application's tables (module "charts", applied after the engine's schema/engine/):
-- charts and their uploaded and written-back revisions, the questions the missing-field scan
-- raises, doctor reviews, the billing ledger, the insurer outbox, invoices and bill deliveries.
-- Written by the chart handlers through their step's transaction and by the chart intake; the
-- engine never reads them, and they reference none of its tables.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
-- (This file squashes the chart parts of the pre-release schema/0001-0017.)

-- One row per chart. Taking a revision number locks this row (SELECT ... FOR NO KEY UPDATE), so
-- concurrent uploads of one chart serialise here.
CREATE TABLE chart (
  chart_id               text PRIMARY KEY,
  patient_ref            text,
  latest_revision        integer NOT NULL DEFAULT 0,
  -- The newest upload revision the missing-field scan has processed; an older scan finishing
  -- later must not reopen questions a newer upload closed.
  last_scanned_revision  integer NOT NULL DEFAULT 0,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT chart_id_format CHECK (chart_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'
                                    AND strpos(chart_id, '..') = 0),
  CONSTRAINT chart_latest_revision_check CHECK (latest_revision >= 0)
);

-- Immutable: rows are inserted, never updated or deleted. The body is kept as json, not jsonb:
-- the text exactly as uploaded (or written back), checked for syntax but not taken apart and
-- rebuilt. Nothing queries inside a chart body, and building jsonb of every 50 KB upload and
-- write-back, then text again for every read, was a good part of an upload's database time.
CREATE TABLE chart_revision (
  chart_id           text NOT NULL REFERENCES chart (chart_id),
  revision           integer NOT NULL,
  content_hash       text NOT NULL,
  body               json NOT NULL,
  source             text NOT NULL,
  uploaded_by        text NOT NULL DEFAULT '',
  -- For write-backs: the upload revision the written-back Bundle was derived from.
  based_on_revision  integer,
  created_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (chart_id, revision),
  CONSTRAINT chart_revision_revision_check CHECK (revision >= 1),
  CONSTRAINT chart_revision_source_check CHECK (source IN ('upload', 'writeback')),
  CONSTRAINT chart_revision_content_hash_format CHECK (content_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT chart_revision_uploaded_by_length CHECK (length(uploaded_by) <= 200),
  CONSTRAINT chart_revision_based_on_check CHECK ((source = 'writeback') = (based_on_revision IS NOT NULL))
);
-- Duplicate-upload lookup; unique as the last guard against two concurrent identical uploads.
CREATE UNIQUE INDEX chart_revision_upload_hash_idx ON chart_revision (chart_id, content_hash)
  WHERE source = 'upload';
CREATE INDEX chart_revision_writeback_hash_idx ON chart_revision (chart_id, content_hash)
  WHERE source = 'writeback';

CREATE TABLE chart_question (
  id               bigserial PRIMARY KEY,
  chart_id         text NOT NULL REFERENCES chart (chart_id),
  rule_id          text NOT NULL,
  resource_ref     text NOT NULL,
  question         text NOT NULL,
  severity         text NOT NULL,
  status           text NOT NULL DEFAULT 'open',
  opened_revision  integer NOT NULL,
  closed_revision  integer,
  created_at       timestamptz NOT NULL DEFAULT now(),
  closed_at        timestamptz,
  CONSTRAINT chart_question_severity_check CHECK (severity IN ('info', 'warning', 'error')),
  CONSTRAINT chart_question_status_check CHECK (status IN ('open', 'closed')),
  CONSTRAINT chart_question_closed_check
    CHECK ((status = 'closed') = (closed_revision IS NOT NULL AND closed_at IS NOT NULL)),
  CONSTRAINT chart_question_rule_id_length CHECK (length(rule_id) BETWEEN 1 AND 100),
  CONSTRAINT chart_question_resource_ref_length CHECK (length(resource_ref) BETWEEN 1 AND 300)
);
-- At most one open question per finding; re-running a scan inserts ON CONFLICT DO NOTHING here.
CREATE UNIQUE INDEX chart_question_open_idx ON chart_question (chart_id, rule_id, resource_ref)
  WHERE status = 'open';
-- "Questions closed by revision N" when a write-back marks them completed.
CREATE INDEX chart_question_closed_idx ON chart_question (chart_id, closed_revision)
  WHERE status = 'closed';

CREATE TABLE review (
  id                 bigserial PRIMARY KEY,
  chart_id           text NOT NULL REFERENCES chart (chart_id),
  revision           integer NOT NULL,
  run_id             bigint NOT NULL,
  step               text NOT NULL,
  assignee           text NOT NULL,
  original_assignee  text NOT NULL,
  practitioner_ref   text,
  status             text NOT NULL DEFAULT 'pending',
  due_at             timestamptz NOT NULL,
  escalations        integer NOT NULL DEFAULT 0,
  escalated_at       timestamptz,
  decision           text,
  comment            text,
  decided_by         text,
  decided_at         timestamptz,
  -- Display data for review lists (patient name, encounter type), kept so listing does not
  -- load Bundles. API output only; never logged.
  summary            jsonb NOT NULL DEFAULT '{}',
  -- The review as a FHIR Task (owner = the practitioner or queue).
  task               jsonb NOT NULL DEFAULT '{}',
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT review_run_step_key UNIQUE (run_id, step),
  CONSTRAINT review_status_check
    CHECK (status IN ('pending', 'approved', 'rejected', 'escalated')),
  CONSTRAINT review_decision_check CHECK (decision IS NULL OR decision IN ('approve', 'reject')),
  CONSTRAINT review_decided_check CHECK ((status IN ('approved', 'rejected')) = (decided_at IS NOT NULL)),
  CONSTRAINT review_comment_length CHECK (comment IS NULL OR length(comment) <= 10000),
  CONSTRAINT review_assignee_length CHECK (length(assignee) BETWEEN 1 AND 300)
);
-- GET /v1/reviews?status=pending&assignee=...
CREATE INDEX review_list_idx ON review (status, assignee, created_at DESC, id DESC);
CREATE INDEX review_chart_idx ON review (chart_id, created_at DESC, id DESC);

-- One row per billed thing; UNIQUE (chart_id, source_ref) is what keeps re-uploads, retries and
-- re-runs from billing twice (billing inserts ON CONFLICT DO NOTHING).
CREATE TABLE ledger_entry (
  id             bigserial PRIMARY KEY,
  chart_id       text NOT NULL REFERENCES chart (chart_id),
  revision       integer NOT NULL,
  source_ref     text NOT NULL,
  kind           text NOT NULL,
  code           text NOT NULL,
  code_system    text NOT NULL DEFAULT '',
  description    text NOT NULL DEFAULT '',
  quantity       numeric NOT NULL DEFAULT 1,
  unit           text NOT NULL DEFAULT '',
  amount         numeric(12, 2) NOT NULL,
  currency       text NOT NULL,
  amount_source  text NOT NULL,
  payor          text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ledger_entry_chart_source_key UNIQUE (chart_id, source_ref),
  CONSTRAINT ledger_entry_kind_check CHECK (kind IN ('claim_item', 'medication_administration')),
  CONSTRAINT ledger_entry_amount_source_check
    CHECK (amount_source IN ('net', 'unit_price', 'claim_total', 'price_list', 'price_list_default')),
  CONSTRAINT ledger_entry_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
  CONSTRAINT ledger_entry_source_ref_length CHECK (length(source_ref) BETWEEN 1 AND 300)
);

-- Notifications to insurers. Billing and discharge insert rows in their step transaction (so a
-- notification exists exactly when its ledger entries or invoice do); the insurance and
-- discharge steps deliver them with an Idempotency-Key header equal to idempotency_key.
CREATE TABLE insurer_outbox (
  id               bigserial PRIMARY KEY,
  chart_id         text NOT NULL REFERENCES chart (chart_id),
  payor            text NOT NULL,
  kind             text NOT NULL,
  idempotency_key  text NOT NULL,
  payload          jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0,
  last_error       text,
  delivered_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT insurer_outbox_idempotency_key UNIQUE (idempotency_key),
  CONSTRAINT insurer_outbox_kind_check CHECK (kind IN ('claim', 'final')),
  CONSTRAINT insurer_outbox_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
  CONSTRAINT insurer_outbox_delivered_check
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL)),
  CONSTRAINT insurer_outbox_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 300)
);
-- The delivery query: pending rows of one chart in creation order.
CREATE INDEX insurer_outbox_pending_idx ON insurer_outbox (chart_id, id) WHERE status = 'pending';
CREATE INDEX insurer_outbox_chart_idx ON insurer_outbox (chart_id, id);

CREATE TABLE insurer_delivery_attempt (
  id           bigserial PRIMARY KEY,
  outbox_id    bigint NOT NULL REFERENCES insurer_outbox (id),
  attempt      integer NOT NULL,
  status_code  integer,
  error        text,
  at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT insurer_delivery_attempt_attempt_check CHECK (attempt >= 1)
);
CREATE INDEX insurer_delivery_attempt_outbox_idx ON insurer_delivery_attempt (outbox_id, id);

-- The closed bill of a released patient: one per chart.
CREATE TABLE invoice (
  id          bigserial PRIMARY KEY,
  chart_id    text NOT NULL REFERENCES chart (chart_id),
  revision    integer NOT NULL,
  total       numeric(12, 2) NOT NULL,
  currency    text NOT NULL,
  status      text NOT NULL DEFAULT 'issued',
  fhir        jsonb NOT NULL,
  -- The readable bill sent to the patient.
  bill_text   text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT invoice_chart_key UNIQUE (chart_id),
  CONSTRAINT invoice_status_check CHECK (status IN ('issued', 'cancelled')),
  CONSTRAINT invoice_currency_format CHECK (currency ~ '^[A-Z]{3}$')
);

-- Each bill goes out once per configured channel.
CREATE TABLE bill_delivery (
  id            bigserial PRIMARY KEY,
  chart_id      text NOT NULL REFERENCES chart (chart_id),
  channel       text NOT NULL,
  channel_type  text NOT NULL,
  target        text NOT NULL DEFAULT '',
  delivered_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT bill_delivery_chart_channel_key UNIQUE (chart_id, channel),
  CONSTRAINT bill_delivery_channel_type_check CHECK (channel_type IN ('folder', 'webhook'))
);

-- A chart revision stored in one statement instead of five (make sure the chart row exists, lock
-- it, look for identical content, insert the revision, bump the chart): each upload and each
-- write-back paid those round trips and their parsing inside its transaction.
--
-- The chart row lock serialises everything that takes a revision number for this chart. NO KEY
-- UPDATE (not plain UPDATE) so foreign-key checks of other tables' inserts are not blocked by it.
-- The statements after it see revisions committed by whoever held the lock before: a volatile
-- function takes a new snapshot per statement under READ COMMITTED.
--
-- Identical content is a duplicate: for an upload, any earlier upload of the chart with that
-- hash; for a write-back, one on the same base revision. Then nothing is written.
CREATE FUNCTION chart_store_revision(p_chart_id text, p_patient_ref text, p_content_hash text,
                                     p_body json, p_source text, p_by text, p_based_on int)
RETURNS TABLE (stored_revision int, duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
  latest int;
  earlier int;
BEGIN
  INSERT INTO chart (chart_id, patient_ref) VALUES (p_chart_id, p_patient_ref)
    ON CONFLICT (chart_id) DO NOTHING;
  SELECT c.latest_revision INTO latest FROM chart c WHERE c.chart_id = p_chart_id
    FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'chart row % vanished after insert', p_chart_id;
  END IF;
  SELECT r.revision INTO earlier FROM chart_revision r
    WHERE r.chart_id = p_chart_id AND r.content_hash = p_content_hash AND r.source = p_source
      AND (p_source = 'upload' OR r.based_on_revision = p_based_on)
    ORDER BY r.revision LIMIT 1;
  IF FOUND THEN
    RETURN QUERY SELECT earlier, true;
    RETURN;
  END IF;
  latest := coalesce(latest, 0) + 1;
  INSERT INTO chart_revision (chart_id, revision, content_hash, body, source, uploaded_by,
                              based_on_revision)
    VALUES (p_chart_id, latest, p_content_hash, p_body, p_source, p_by, p_based_on);
  UPDATE chart SET latest_revision = latest, patient_ref = coalesce(p_patient_ref, patient_ref),
    updated_at = now() WHERE chart_id = p_chart_id;
  RETURN QUERY SELECT latest, false;
END
$$;

-- Every large value compressed with lz4, chart bodies above all: lz4 compresses them several
-- times faster than the default pglz for a similar size, and that compression ran in every
-- upload's transaction; insurer notifications, invoices, review tasks and the like are a few
-- kilobytes each, past TOAST's threshold, too. A server built without lz4 keeps pglz.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT a.attrelid::regclass AS tbl, a.attname AS col
    FROM pg_attribute a
    JOIN pg_class t ON t.oid = a.attrelid
    WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'
      AND t.relname IN ('chart', 'chart_revision', 'chart_question', 'review', 'ledger_entry',
                        'insurer_outbox', 'insurer_delivery_attempt', 'invoice', 'bill_delivery')
      AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('json'::regtype, 'jsonb'::regtype, 'text'::regtype, 'bytea'::regtype)
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', c.tbl, c.col);
  END LOOP;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; values stay pglz-compressed';
END
$$;
