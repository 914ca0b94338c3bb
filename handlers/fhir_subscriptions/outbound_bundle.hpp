// The notification Bundles chartflow sends its subscribers, in the R4 backport form the inbound
// side reads (notification.hpp): a `history` Bundle whose first entry is the
// backport-subscription-status-r4 Parameters, then, for full-resource content, each event's
// focus. Pure: no I/O, safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::fhir_subscriptions {

struct OutboundEvent {
  std::int64_t number = 0;
  std::string timestamp;  // ISO 8601, when the event happened
  std::string focus;      // "Task/review-12"
  Json resource;          // sent only with full-resource content
};

struct OutboundStatus {
  std::string subscription_id;
  std::string topic_url;
  std::string status;   // requested | active | error | off
  std::string type;     // handshake | heartbeat | event-notification | query-status
  std::string content;  // empty | id-only | full-resource
  std::int64_t events_since_start = 0;
  std::string error;  // shown in $status while failing
};

// The backport-subscription-status-r4 Parameters of `s` with `events`.
Json status_parameters(const OutboundStatus& s, const std::vector<OutboundEvent>& events = {});

// The Bundle POSTed to the subscriber.
Json notification_bundle(const OutboundStatus& s, const std::vector<OutboundEvent>& events);

// What GET /fhir/Subscription/{id}/$status answers: a searchset Bundle of the status.
Json status_bundle(const OutboundStatus& s);

}  // namespace chartflow::handlers::fhir_subscriptions
