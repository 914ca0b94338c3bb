// chartflow as a rest-hook endpoint for an EHR's FHIR server (issue #18 part 1):
//   POST /fhir/subscriptions/{name}          notification Bundles of a configured subscription,
//                                            authenticated by its secret
//   GET  /fhir/subscriptions/{name}/$status  what the sender last said and the gaps (operator)
// Each notification event becomes one `fhir.notification` engine event, once per (subscription,
// event number); a gap is asked for through the server's $events where it offers that.
#pragma once

#include <memory>

#include "engine/module.hpp"
#include "handlers/fhir_subscriptions/notification.hpp"
#include "handlers/fhir_subscriptions/subscription_settings.hpp"

namespace chartflow::handlers::fhir_subscriptions {

inline constexpr const char* kNotificationEvent = "fhir.notification";

void add_subscription_routes(ModuleRegistry& module,
                             std::shared_ptr<const SubscriptionSettings> settings);

// The engine event body of one notification event (ids, the focus reference and, for
// full-resource content, the resources the Bundle carried).
Json event_body(const std::string& name, const Notification& n, const NotificationEvent& e);

}  // namespace chartflow::handlers::fhir_subscriptions
