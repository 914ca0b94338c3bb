-- Outbound FHIR subscriptions (issue #18 part 2): clients subscribe to chartflow's
-- SubscriptionTopics and are notified through a durable outbox.
--   fhir_out_subscription   written by the routes (create, delete) and, for the event count only,
--                           by the step that publishes an event in its own transaction, so an
--                           event's number is taken atomically with what it reports (no gaps)
--   fhir_out_notification   one row per event and subscription, written with the event
--   fhir_out_delivery       the deliverer's state, written only through the step journal, so a
--                           call to the subscriber never holds a lock a publishing step needs
--   fhir_out_disclosure     every notification sent (the disclosure record of PHI), journalled

CREATE TABLE fhir_out_subscription (
  id                 text PRIMARY KEY DEFAULT replace(gen_random_uuid()::text, '-', ''),
  topic              text NOT NULL,   -- topic code (review-requested, ...)
  patient            text,            -- filter: only events of this Patient/{id}; NULL = all
  endpoint           text NOT NULL,
  -- channel.header lines ("Authorization: Bearer ..."): the subscriber's credential, sent with
  -- every notification and never shown again.
  headers            jsonb NOT NULL DEFAULT '[]',
  content            text NOT NULL,
  heartbeat_seconds  integer,
  status             text NOT NULL DEFAULT 'requested',  -- off once deleted
  events             bigint NOT NULL DEFAULT 0,  -- eventsSinceSubscriptionStart
  resource           jsonb NOT NULL,             -- the Subscription as created, headers removed
  created_by         text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT fhir_out_subscription_content CHECK (content IN ('empty', 'id-only', 'full-resource')),
  CONSTRAINT fhir_out_subscription_status CHECK (status IN ('requested', 'off')),
  CONSTRAINT fhir_out_subscription_heartbeat CHECK (heartbeat_seconds IS NULL OR heartbeat_seconds > 0)
);
CREATE INDEX fhir_out_subscription_topic ON fhir_out_subscription (topic) WHERE status <> 'off';

CREATE TABLE fhir_out_notification (
  subscription_id  text NOT NULL REFERENCES fhir_out_subscription (id),
  event_number     bigint NOT NULL,
  focus            text NOT NULL,   -- "Task/review-12"
  patient          text,
  resource         jsonb,           -- the focus as it was when the event happened
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, event_number)
);

CREATE TABLE fhir_out_delivery (
  subscription_id    text PRIMARY KEY REFERENCES fhir_out_subscription (id),
  status             text NOT NULL DEFAULT 'requested',  -- requested | active | error
  handshake_at       timestamptz,
  delivered_through  bigint NOT NULL DEFAULT 0,  -- every event up to it was delivered, in order
  failures           integer NOT NULL DEFAULT 0, -- consecutive failed attempts
  last_error         text,
  last_sent_at       timestamptz,  -- the last notification the subscriber accepted
  next_attempt_at    timestamptz,  -- after a failure: not before
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT fhir_out_delivery_status CHECK (status IN ('requested', 'active', 'error'))
);

CREATE TABLE fhir_out_disclosure (
  id               bigserial PRIMARY KEY,
  subscription_id  text NOT NULL REFERENCES fhir_out_subscription (id),
  kind             text NOT NULL,  -- handshake | heartbeat | event-notification
  event_number     bigint,
  focus            text,
  patient          text,
  content          text NOT NULL,
  run_id           bigint NOT NULL,
  sent_at          timestamptz NOT NULL DEFAULT now(),
  answered_at      timestamptz,
  status_code      integer,
  error            text,
  CONSTRAINT fhir_out_disclosure_kind
    CHECK (kind IN ('handshake', 'heartbeat', 'event-notification'))
);
CREATE INDEX fhir_out_disclosure_subscription ON fhir_out_disclosure (subscription_id, id);
