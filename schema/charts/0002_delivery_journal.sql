-- Outside calls on record (issue #15 item 1). A bill went out once per attempt of the discharge
-- step, each time re-rendered, because the invoice, its delivery rows and the calls shared one
-- step transaction that a retry or a crash rolled back; an insurer's answer was lost the same way.
-- Now the discharge step only writes what is to be sent (the exact bytes and the key), and the
-- sending steps record each call through the step journal, which commits at once on a connection
-- of its own: the claim and "started" before the call, "answered" and the row's state after it.
-- The journal is the only writer of these state columns, so it never waits on a step's own
-- transaction (the step transaction reads the rows without locking them).

-- bill_delivery becomes the bill's outbox: one row per chart and channel, created pending with
-- the body to send, delivered when the channel took it. Rows from before were written after a
-- successful send: they are delivered, their bytes were not kept.
ALTER TABLE bill_delivery
  ADD COLUMN invoice_id       bigint REFERENCES invoice (id),
  ADD COLUMN idempotency_key  text,
  -- The exact bytes each attempt sends (webhook: the JSON body; folder: the file's content).
  ADD COLUMN body             text,
  ADD COLUMN status           text NOT NULL DEFAULT 'delivered',
  ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
  ADD COLUMN last_error       text,
  -- The lease of the step sending it now (its idempotency key): another step leaves the row
  -- alone until sending_until, the same step's next attempt takes it over at once.
  ADD COLUMN sending_by       text,
  ADD COLUMN sending_until    timestamptz,
  ADD COLUMN created_at       timestamptz,
  ADD COLUMN updated_at       timestamptz;
UPDATE bill_delivery d
  SET idempotency_key = 'bill:' || d.chart_id || ':' || d.channel,
      invoice_id = (SELECT i.id FROM invoice i WHERE i.chart_id = d.chart_id),
      created_at = d.delivered_at, updated_at = d.delivered_at;
ALTER TABLE bill_delivery
  ALTER COLUMN idempotency_key SET NOT NULL,
  ALTER COLUMN status SET DEFAULT 'pending',
  ALTER COLUMN created_at SET DEFAULT now(),
  ALTER COLUMN created_at SET NOT NULL,
  ALTER COLUMN updated_at SET DEFAULT now(),
  ALTER COLUMN updated_at SET NOT NULL,
  ALTER COLUMN delivered_at DROP NOT NULL,
  ALTER COLUMN delivered_at DROP DEFAULT,
  ADD CONSTRAINT bill_delivery_status_check CHECK (status IN ('pending', 'delivered')),
  ADD CONSTRAINT bill_delivery_delivered_check
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL)),
  ADD CONSTRAINT bill_delivery_body_check CHECK (status = 'delivered' OR body IS NOT NULL),
  ADD CONSTRAINT bill_delivery_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 300);

-- One row per attempt at a channel, written before the call (started_at) and completed after it
-- (answered_at with the HTTP status or the error). A row without answered_at is a call whose
-- outcome no one saw (the process died during it): the bill may have gone out; its resend
-- carries the same bytes and key.
CREATE TABLE bill_delivery_attempt (
  id           bigserial PRIMARY KEY,
  delivery_id  bigint NOT NULL REFERENCES bill_delivery (id),
  attempt      integer NOT NULL,
  sent_by      text NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  answered_at  timestamptz,
  status_code  integer,
  error        text,
  CONSTRAINT bill_delivery_attempt_key UNIQUE (delivery_id, attempt),
  CONSTRAINT bill_delivery_attempt_attempt_check CHECK (attempt >= 1)
);

-- The insurer outbox the same way: its lease, and each attempt's answer apart from its start
-- (insurer_delivery_attempt.at is when the attempt started; sent_by the step). Attempts from
-- before were written after the answer.
ALTER TABLE insurer_outbox
  ADD COLUMN sending_by     text,
  ADD COLUMN sending_until  timestamptz;
ALTER TABLE insurer_delivery_attempt
  ADD COLUMN sent_by      text,
  ADD COLUMN answered_at  timestamptz;
UPDATE insurer_delivery_attempt SET answered_at = at;

-- As 0001 does for every large value: lz4 where the server has it.
DO $$
BEGIN
  ALTER TABLE bill_delivery ALTER COLUMN body SET COMPRESSION lz4,
    ALTER COLUMN idempotency_key SET COMPRESSION lz4, ALTER COLUMN last_error SET COMPRESSION lz4,
    ALTER COLUMN sending_by SET COMPRESSION lz4, ALTER COLUMN status SET COMPRESSION lz4;
  ALTER TABLE bill_delivery_attempt ALTER COLUMN sent_by SET COMPRESSION lz4,
    ALTER COLUMN error SET COMPRESSION lz4;
  ALTER TABLE insurer_outbox ALTER COLUMN sending_by SET COMPRESSION lz4;
  ALTER TABLE insurer_delivery_attempt ALTER COLUMN sent_by SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; values stay pglz-compressed';
END
$$;
