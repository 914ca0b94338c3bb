-- An EHR that re-creates its Subscription (or loses its state) numbers events from 1 again: the
-- old numbers must not make the new events look like duplicates. Each count is an epoch of the
-- configured subscription: a notification naming another of the server's Subscriptions, or a
-- handshake announcing fewer events than were seen, starts the next one. Received events,
-- fetched resources and the gap marks are per epoch; rows from before are epoch 1.
ALTER TABLE fhir_subscription_state
  ADD COLUMN epoch integer NOT NULL DEFAULT 1,
  -- "Subscription/<id>" of subscription_ref, however the server wrote the reference.
  ADD COLUMN subscription_key text;
UPDATE fhir_subscription_state
   SET subscription_key = substring(subscription_ref
                                    FROM '(Subscription/[^/?#]+)(/_history/[^/?#]*)?([?#].*)?$')
 WHERE subscription_ref IS NOT NULL;

ALTER TABLE fhir_subscription_event ADD COLUMN epoch integer NOT NULL DEFAULT 1;
ALTER TABLE fhir_subscription_event DROP CONSTRAINT fhir_subscription_event_pkey,
  ADD PRIMARY KEY (name, epoch, event_number);

ALTER TABLE fhir_fetched_resource ADD COLUMN epoch integer NOT NULL DEFAULT 1;
ALTER TABLE fhir_fetched_resource DROP CONSTRAINT fhir_fetched_resource_pkey,
  ADD PRIMARY KEY (name, epoch, event_number);
