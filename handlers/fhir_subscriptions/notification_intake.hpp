// Turning a subscription's notification events into engine events, shared by the route that
// receives them pushed and the recovery step that asks for missed ones: one `fhir.notification`
// event per (subscription, epoch, event number), its number taken in the event's transaction so
// a retry or a replay starts nothing twice, each audited.
#pragma once

#include <string>

#include "engine/module.hpp"
#include "handlers/fhir_subscriptions/notification.hpp"

namespace chartflow::handlers::fhir_subscriptions {

inline constexpr const char* kNotificationEvent = "fhir.notification";
// Asks for a subscription's missed events: {subscription, epoch, subscription_reference}.
inline constexpr const char* kGapEvent = "fhir.gap";
inline constexpr const char* kNotificationAction = "fhir.notification";

struct IntakeOutcome {
  Json accepted = Json::array();    // event numbers that became engine events
  Json duplicates = Json::array();  // numbers received before
  Json runs = Json::array();
};

// `audit` is the record each stored event gets (its detail gains the number, epoch and `via`).
void ingest_events(EngineServices& engine, const AuditEntry& audit, const std::string& name,
                   int epoch, const Notification& n, const std::string& via, IntakeOutcome& out);

// The engine event body of one notification event (ids, the focus reference and, for
// full-resource content, the resources the Bundle carried).
Json event_body(const std::string& name, int epoch, const Notification& n,
                const NotificationEvent& e);

}  // namespace chartflow::handlers::fhir_subscriptions
