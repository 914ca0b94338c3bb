// Handler `fhir_fetch`: for a `fhir.notification` event of id-only content, reads the focus
// resource from the subscription's FHIR server (fhir_base_url, with its TLS settings and
// credentials) and stores it in fhir_fetched_resource with the step's commit; a Patient focus
// is read as Patient/{id}/$everything unless the subscription (or the step's input
// `everything: false`) says otherwise. Only references on that server are read: a focus naming
// another host is refused, so credentials never go where the notification points. Output: ids
// and counts (the reference, the resource type, the entries of a Bundle), never the content.
#pragma once

#include <memory>

#include "engine/handler.hpp"
#include "handlers/fhir_subscriptions/subscription_settings.hpp"

namespace chartflow::handlers::fhir_subscriptions {

// Responses above this are refused rather than stored cut off.
inline constexpr std::size_t kMaxFetchedBytes = std::size_t{16} * 1024 * 1024;

class FhirFetchHandler : public Handler {
 public:
  explicit FhirFetchHandler(std::shared_ptr<const SubscriptionSettings> settings)
      : settings_(std::move(settings)) {}
  StepOutcome run(StepContext& ctx) override;
  std::string bulkhead() const override { return kNetworkBulkhead; }

 private:
  std::shared_ptr<const SubscriptionSettings> settings_;
};

// The URL fhir_fetch reads for `focus` on `sub`, or "" with `why` set when it must not.
std::string fetch_url(const Subscription& sub, const std::string& focus, bool everything,
                      std::string* why);

}  // namespace chartflow::handlers::fhir_subscriptions
