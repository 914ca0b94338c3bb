// A FHIR subscription notification as an EHR's FHIR server sends it to a rest-hook endpoint
// (Subscriptions R5 Backport IG): a Bundle of type `history` whose first entry is the status,
// either the R4 backport form (a Parameters resource of the backport-subscription-status-r4
// profile: parameter `type`, `events-since-subscription-start`, `notification-event` with parts
// `event-number`, `focus`, ...) or the R4B form (a SubscriptionStatus resource: `type`,
// `eventsSinceSubscriptionStart`, `notificationEvent[]` with `eventNumber`, `focus`). Both are
// read into one Notification. Pure: no I/O, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::fhir_subscriptions {

struct NotificationEvent {
  std::int64_t number = 0;
  std::string focus;  // a reference ("Patient/123" or absolute); "" for `empty` content
  std::string timestamp;
  std::vector<std::string> additional_context;
  // full-resource: the Bundle's resources for the focus and the additional context.
  Json resources = Json::array();
};

struct Notification {
  std::string form;  // "r4-backport" (Parameters) or "r4b" (SubscriptionStatus)
  // handshake | heartbeat | event-notification | query-status | query-event ($events answers)
  std::string type;
  std::string subscription;  // the server's Subscription reference
  std::string topic;         // canonical URL of the SubscriptionTopic
  std::string status;        // requested | active | error | off
  std::optional<std::int64_t> events_since_start;
  // "empty" (no focus), "id-only" (focus without its resource) or "full-resource", from the
  // events: the status does not say, the entries do.
  std::string content = "empty";
  std::vector<NotificationEvent> events;

  bool carries_events() const { return type == "event-notification" || type == "query-event"; }
};

// Thrown for a body that is no notification; `message` names the element at fault (never its
// content), for a 400.
struct NotificationError {
  std::string message;
};

Notification parse_notification(const Json& bundle);

// "Type/id" of a reference (relative, absolute, with or without _history); "" when it has no
// such tail.
std::string reference_key(const std::string& reference);

}  // namespace chartflow::handlers::fhir_subscriptions
