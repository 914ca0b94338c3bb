// Handler `fhir_deliver`: the deliverer of one outbound Subscription (event
// fhir.subscription.requested {"subscription_id"}), a step that lives as long as the
// subscription: it sends the handshake, then each event in number order (one Bundle per event;
// a failing one holds back every later one), and a heartbeat when the subscription was idle
// for its heartbeatPeriod, and waits (WaitUntil) in between. One run per subscription is the
// one sender, so order needs no lock. A failed call waits `retry_initial` doubling to
// `retry_max` before the next; `error_after` failures in a row put the subscription in `error`
// (it keeps trying at that pace and is `active` again on the first success). Deleting the
// subscription ends the run.
// Reads through the step's transaction; every write (the disclosure record before the call,
// the answer and the delivery state after it) goes through the step journal, so a call's record
// survives a crash, and a publishing step never waits on a call in flight.
// Idle, it waits for the signal kDeliverSignal that publish() sends in the publishing
// transaction, so a new event goes out as soon as it commits. Each call holds a lease on the
// delivery row (claimed_by/claimed_until): an attempt started while an earlier attempt's call is
// still in flight (the step timed out under it) waits instead of sending beside it. Each event's
// notification is audited (fhir.subscription.notify, ids only) with its disclosure record.
// Settings (step input, all optional): poll (1m: how long an idle deliverer waits unwoken),
// retry_initial (1s), retry_max (5m), error_after (5), timeout (10s, per call), batch (50 events
// per attempt).
#pragma once

#include <memory>

#include "engine/module.hpp"
#include "handlers/fhir_subscriptions/subscriber_headers.hpp"

namespace chartflow::handlers::fhir_subscriptions {

inline constexpr const char* kSubscriptionRequestedEvent = "fhir.subscription.requested";

class OutboundDeliveryHandler : public Handler {
 public:
  // `secrets` opens the subscribers' sealed channel.header lines.
  // `services`: the audit trail's way in; until bound, the step retries.
  OutboundDeliveryHandler(SecretsPtr secrets, std::shared_ptr<ServicesSlot> services)
      : secrets_(std::move(secrets)), services_(std::move(services)) {}
  StepOutcome run(StepContext& ctx) override;
  void validate(const Json& config) const override;
  std::string bulkhead() const override { return kNetworkBulkhead; }

 private:
  SecretsPtr secrets_;
  std::shared_ptr<ServicesSlot> services_;
};

}  // namespace chartflow::handlers::fhir_subscriptions
