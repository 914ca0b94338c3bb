// chartflow as a rest-hook endpoint for an EHR's FHIR server (issue #18 part 1):
//   POST /fhir/subscriptions/{name}          notification Bundles of a configured subscription,
//                                            authenticated by its secret
//   GET  /fhir/subscriptions/{name}/$status  what the sender last said and the gaps (operator)
// Each notification event becomes one `fhir.notification` engine event, once per (subscription,
// epoch, event number); a gap starts a `fhir.gap` event whose step asks the server's $events
// where it offers that (gap_recovery.hpp).
#pragma once

#include <memory>

#include "engine/module.hpp"
#include "handlers/fhir_subscriptions/notification_intake.hpp"
#include "handlers/fhir_subscriptions/subscription_settings.hpp"

namespace chartflow::handlers::fhir_subscriptions {

void add_subscription_routes(ModuleRegistry& module,
                             std::shared_ptr<const SubscriptionSettings> settings);

}  // namespace chartflow::handlers::fhir_subscriptions
