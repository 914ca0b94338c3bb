// Handler `fhir_recover_gaps`: for a `fhir.gap` event, asks the subscription's FHIR server for
// the events it announced but we never received (`Subscription/{id}/$events`, a few ranges per
// attempt) and turns each into a `fhir.notification` event, once per number. A durable step of
// its own rather than part of the sender's request: the EHR is answered at once, and a FHIR
// server that cannot answer now is asked again by the step's retries, after a crash too.
#pragma once

#include <memory>

#include "engine/module.hpp"
#include "handlers/fhir_subscriptions/subscription_settings.hpp"

namespace chartflow::handlers::fhir_subscriptions {

// Ranges of missed events asked for per attempt; more wait for the next notification's step.
inline constexpr std::size_t kGapsAskedAtOnce = 5;

class GapRecoveryHandler : public Handler {
 public:
  GapRecoveryHandler(std::shared_ptr<const SubscriptionSettings> settings,
                     std::shared_ptr<ServicesSlot> services)
      : settings_(std::move(settings)), services_(std::move(services)) {}
  StepOutcome run(StepContext& ctx) override;
  std::string bulkhead() const override { return kNetworkBulkhead; }

 private:
  std::shared_ptr<const SubscriptionSettings> settings_;
  std::shared_ptr<ServicesSlot> services_;
};

}  // namespace chartflow::handlers::fhir_subscriptions
