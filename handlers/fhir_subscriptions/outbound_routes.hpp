// chartflow's outbound FHIR subscriptions (issue #18 part 2), in the R4 backport shape:
//   GET    /fhir/SubscriptionTopic[/{id}]          the topics chartflow publishes (any role)
//   POST   /fhir/Subscription                      create one (admin: it opens a channel that
//                                                  discloses PHI); 201, status `requested`
//   GET    /fhir/Subscription[/{id}]               list / read, channel.header left out (operator)
//   DELETE /fhir/Subscription/{id}                 status `off`; its deliverer ends (admin)
//   GET    /fhir/Subscription/{id}/$status         the SubscriptionStatus (operator)
// Creating one stores it and, in the same transaction, the event fhir.subscription.requested
// that starts its deliverer (workflow fhir-subscription-delivery, handler fhir_deliver), which
// sends the handshake first. Creation and deletion are audited; each notification sent is
// recorded as a disclosure in fhir_out_disclosure by the deliverer.
#pragma once

#include "engine/module.hpp"
#include "handlers/fhir_subscriptions/subscriber_headers.hpp"

namespace chartflow::handlers::fhir_subscriptions {

// `secrets` seals each subscriber's channel.header lines before they are stored.
void add_outbound_routes(ModuleRegistry& module, const SecretsPtr& secrets);

// The checks POST /fhir/Subscription makes, as stored: {topic, patient (or null), endpoint,
// headers, content, heartbeat_seconds (or null), resource}. Throws http::HttpError 400 naming
// the element at fault.
Json validate_subscription(const Json& body);

}  // namespace chartflow::handlers::fhir_subscriptions
