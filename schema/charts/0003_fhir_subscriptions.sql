-- Inbound FHIR subscriptions (issue #18 part 1): what each configured subscription's sender has
-- told us, and which notification events became engine events. The event rows are written in
-- the transaction that stores the engine event, so a notification retried after a crash finds
-- its number taken and starts nothing twice.

-- One row per subscription name (settings/fhir-subscriptions.yaml), created at first contact.
CREATE TABLE fhir_subscription_state (
  name              text PRIMARY KEY,
  subscription_ref  text,         -- the server's Subscription reference, as last sent
  topic             text,
  status            text,         -- the server's word: requested | active | error | off
  last_type         text,         -- handshake | heartbeat | event-notification | query-event
  last_seen_at      timestamptz,
  handshake_at      timestamptz,
  heartbeat_at      timestamptz,
  -- Every event numbered up to `contiguous` was received (or came before a handshake said the
  -- count started there); `announced` is the highest number the server said exists (an event's
  -- number, or eventsSinceSubscriptionStart). Numbers between them not received are the gaps.
  contiguous        bigint NOT NULL DEFAULT 0,
  announced         bigint NOT NULL DEFAULT 0,
  -- The last attempt at fetching missed events through $events, and its error ("" = none).
  recovery_at       timestamptz,
  recovery_error    text,
  CONSTRAINT fhir_subscription_state_counts CHECK (contiguous >= 0 AND announced >= 0)
);

CREATE TABLE fhir_subscription_event (
  name          text NOT NULL,
  event_number  bigint NOT NULL,
  via           text NOT NULL,    -- notification | events ($events, asked for a gap)
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, event_number),
  CONSTRAINT fhir_subscription_event_via CHECK (via IN ('notification', 'events'))
);

-- What fhir_fetch read for an id-only event: the focus resource (or a Patient's $everything
-- Bundle). Patient data, like a chart revision: read through the chart API's rules only.
CREATE TABLE fhir_fetched_resource (
  name          text NOT NULL,
  event_number  bigint NOT NULL,
  reference     text NOT NULL,
  url           text NOT NULL,
  content       jsonb NOT NULL,
  fetched_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, event_number)
);
