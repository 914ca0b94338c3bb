-- Outbound FHIR subscriptions, delivery (issue #18 part 2): publishing wakes the deliverer, and
-- no two attempts of a deliverer send at once.
--   run_id         the subscription's deliverer run, recorded by its first attempt, so an event's
--                  publisher can signal it in the publishing transaction rather than the
--                  deliverer polling
--   claimed_by     the step attempt whose call to the subscriber is in flight, and how long it
--   claimed_until  may be: an attempt started while an earlier one's call hangs (a step timeout)
--                  waits for the lease to end instead of sending beside it (order, numbering)
-- Written, like the rest of the row, only through the step journal.
ALTER TABLE fhir_out_delivery
  ADD COLUMN run_id bigint,
  ADD COLUMN claimed_by text,
  ADD COLUMN claimed_until timestamptz;
