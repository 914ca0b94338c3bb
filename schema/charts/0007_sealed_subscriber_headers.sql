-- A subscriber's channel.header lines are its credential: stored sealed (AES-256-GCM under the
-- deployment's --secrets-key-file, handlers/fhir_subscriptions/subscriber_headers.hpp) so a dump,
-- backup or replica of the database does not carry them in clear. `headers` keeps the plain lines
-- of rows written before this migration only until their deliverer next runs and seals them.
ALTER TABLE fhir_out_subscription ADD COLUMN sealed_headers text;
COMMENT ON COLUMN fhir_out_subscription.sealed_headers IS
  'channel.header lines, sealed: cfs1:<key id>:<hex>; NULL when there are none';
