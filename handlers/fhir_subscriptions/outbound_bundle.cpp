#include "handlers/fhir_subscriptions/outbound_bundle.hpp"

#include "engine/util/time.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

constexpr const char* kStatusProfile =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-status-r4";

Json event_parameter(const OutboundEvent& e, const std::string& content) {
  Json parts = Json::array({{{"name", "event-number"}, {"valueString", std::to_string(e.number)}}});
  if (!e.timestamp.empty()) parts.push_back({{"name", "timestamp"}, {"valueInstant", e.timestamp}});
  if (content != "empty" && !e.focus.empty())
    parts.push_back({{"name", "focus"}, {"valueReference", {{"reference", e.focus}}}});
  return {{"name", "notification-event"}, {"part", std::move(parts)}};
}

}  // namespace

Json status_parameters(const OutboundStatus& s, const std::vector<OutboundEvent>& events) {
  Json params =
      Json::array({{{"name", "subscription"},
                    {"valueReference", {{"reference", "Subscription/" + s.subscription_id}}}},
                   {{"name", "topic"}, {"valueCanonical", s.topic_url}},
                   {{"name", "status"}, {"valueCode", s.status}},
                   {{"name", "type"}, {"valueCode", s.type}},
                   {{"name", "events-since-subscription-start"},
                    {"valueString", std::to_string(s.events_since_start)}}});
  for (const auto& e : events) params.push_back(event_parameter(e, s.content));
  if (!s.error.empty())
    params.push_back({{"name", "error"}, {"valueCodeableConcept", {{"text", s.error}}}});
  return {{"resourceType", "Parameters"},
          {"meta", {{"profile", Json::array({kStatusProfile})}}},
          {"parameter", std::move(params)}};
}

Json notification_bundle(const OutboundStatus& s, const std::vector<OutboundEvent>& events) {
  Json entries = Json::array(
      {{{"fullUrl", "urn:chartflow:subscription-status:" + s.subscription_id + ":" +
                        std::to_string(s.events_since_start)},
        {"resource", status_parameters(s, events)},
        {"request", {{"method", "GET"}, {"url", "Subscription/" + s.subscription_id + "/$status"}}},
        {"response", {{"status", "200"}}}}});
  if (s.content != "empty") {
    for (const auto& e : events) {
      if (e.focus.empty()) continue;
      Json entry = {{"fullUrl", e.focus}};
      if (s.content == "full-resource" && e.resource.is_object()) {
        entry["resource"] = e.resource;
        entry["request"] = {{"method", "PUT"}, {"url", e.focus}};
        entry["response"] = {{"status", "200"}};
      }
      entries.push_back(std::move(entry));
    }
  }
  return {{"resourceType", "Bundle"},
          {"type", "history"},
          {"timestamp", util::iso8601(Clock::now())},
          {"entry", std::move(entries)}};
}

Json status_bundle(const OutboundStatus& s) {
  return {{"resourceType", "Bundle"},
          {"type", "searchset"},
          {"total", 1},
          {"entry",
           Json::array({{{"resource", status_parameters(s)}, {"search", {{"mode", "match"}}}}})}};
}

}  // namespace chartflow::handlers::fhir_subscriptions
