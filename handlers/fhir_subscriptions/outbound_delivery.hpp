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
// Settings (step input, all optional): poll (1s: how soon a new event goes out), retry_initial
// (1s), retry_max (5m), error_after (5), timeout (10s, per call), batch (50 events per attempt).
#pragma once

#include "engine/handler.hpp"

namespace chartflow::handlers::fhir_subscriptions {

inline constexpr const char* kSubscriptionRequestedEvent = "fhir.subscription.requested";

class OutboundDeliveryHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override;
  void validate(const Json& config) const override;
  std::string bulkhead() const override { return kNetworkBulkhead; }
};

}  // namespace chartflow::handlers::fhir_subscriptions
