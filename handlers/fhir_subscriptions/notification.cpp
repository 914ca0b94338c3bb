#include "handlers/fhir_subscriptions/notification.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <set>

#include "handlers/fhir/bundle_index.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using fhir::array_member;
using fhir::member;
using fhir::string_member;

[[noreturn]] void bad(std::string message) { throw NotificationError{std::move(message)}; }

// An event count or number: FHIR carries int64 as a string (R4B, backport valueString) or, in
// older backport drafts, as valueUnsignedInt / valueInteger / valueInteger64.
std::optional<std::int64_t> count_value(const Json& v) {
  std::int64_t out = -1;
  if (v.is_number_integer()) {
    out = v.get<std::int64_t>();
  } else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (out < 0) return std::nullopt;
  return out;
}

std::int64_t required_count(const Json* v, const std::string& where) {
  if (v == nullptr) bad(where + " is missing");
  auto n = count_value(*v);
  if (!n) bad(where + " must be a non-negative integer");
  return *n;
}

// A Parameters parameter's value[x] (the first value* member).
const Json* param_value(const Json& param) {
  if (!param.is_object()) return nullptr;
  for (const auto& [key, value] : param.items())
    if (key.rfind("value", 0) == 0 && !value.is_null()) return &value;
  return nullptr;
}

std::string reference_of(const Json* v) {
  if (v == nullptr) return {};
  if (v->is_string()) return v->get<std::string>();
  return string_member(*v, "reference");
}

void check_type(const std::string& type, const std::string& where) {
  static const std::set<std::string> kTypes = {"handshake", "heartbeat", "event-notification",
                                               "query-status", "query-event"};
  if (type.empty()) bad(where + " is missing");
  if (kTypes.count(type) == 0)
    bad(where + " must be handshake, heartbeat, event-notification, query-status or query-event");
}

// R4 backport: Parameters with the status as named parameters.
void read_parameters(const Json& params, Notification& n) {
  n.form = "r4-backport";
  int index = 0;
  for (const auto& p : array_member(params, "parameter")) {
    const std::string name = string_member(p, "name");
    const Json* value = param_value(p);
    if (name == "subscription") {
      n.subscription = reference_of(value);
    } else if (name == "topic") {
      n.topic = value != nullptr && value->is_string() ? value->get<std::string>() : "";
    } else if (name == "status") {
      n.status = value != nullptr && value->is_string() ? value->get<std::string>() : "";
    } else if (name == "type") {
      n.type = value != nullptr && value->is_string() ? value->get<std::string>() : "";
    } else if (name == "events-since-subscription-start") {
      n.events_since_start =
          required_count(value, "Parameters.parameter 'events-since-subscription-start'");
    } else if (name == "notification-event") {
      const std::string where = fmt::format("Parameters 'notification-event' #{}", index++);
      NotificationEvent e;
      bool numbered = false;
      for (const auto& part : array_member(p, "part")) {
        const std::string pname = string_member(part, "name");
        const Json* pv = param_value(part);
        if (pname == "event-number") {
          e.number = required_count(pv, where + " part 'event-number'");
          numbered = true;
        } else if (pname == "focus") {
          e.focus = reference_of(pv);
        } else if (pname == "timestamp") {
          e.timestamp = pv != nullptr && pv->is_string() ? pv->get<std::string>() : "";
        } else if (pname == "additional-context") {
          if (auto ref = reference_of(pv); !ref.empty()) e.additional_context.push_back(ref);
        }
      }
      if (!numbered) bad(where + " has no 'event-number' part");
      n.events.push_back(std::move(e));
    }
  }
  check_type(n.type, "Parameters.parameter 'type'");
}

// R4B (and R5): a SubscriptionStatus resource.
void read_subscription_status(const Json& status, Notification& n) {
  n.form = "r4b";
  n.subscription = reference_of(member(status, "subscription"));
  n.topic = string_member(status, "topic");
  n.status = string_member(status, "status");
  n.type = string_member(status, "type");
  check_type(n.type, "SubscriptionStatus.type");
  if (const Json* since = member(status, "eventsSinceSubscriptionStart"))
    n.events_since_start = required_count(since, "SubscriptionStatus.eventsSinceSubscriptionStart");
  int index = 0;
  for (const auto& ev : array_member(status, "notificationEvent")) {
    const std::string where = fmt::format("SubscriptionStatus.notificationEvent[{}]", index++);
    NotificationEvent e;
    e.number = required_count(member(ev, "eventNumber"), where + ".eventNumber");
    e.focus = reference_of(member(ev, "focus"));
    e.timestamp = string_member(ev, "timestamp");
    for (const auto& ctx : array_member(ev, "additionalContext"))
      if (auto ref = reference_of(&ctx); !ref.empty()) e.additional_context.push_back(ref);
    n.events.push_back(std::move(e));
  }
}

}  // namespace

std::string reference_key(const std::string& reference) {
  std::string ref = reference.substr(0, reference.find_first_of("?#"));
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= ref.size()) {
    auto slash = ref.find('/', start);
    if (slash == std::string::npos) slash = ref.size();
    if (slash > start) parts.push_back(ref.substr(start, slash - start));
    start = slash + 1;
  }
  // Type/id/_history/vid
  if (parts.size() >= 4 && parts[parts.size() - 2] == "_history") parts.resize(parts.size() - 2);
  if (parts.size() < 2) return {};
  const std::string& type = parts[parts.size() - 2];
  if (type.empty() || std::isupper(static_cast<unsigned char>(type.front())) == 0) return {};
  return type + "/" + parts.back();
}

Notification parse_notification(const Json& bundle) {
  if (!bundle.is_object() || string_member(bundle, "resourceType") != "Bundle")
    bad("the body is not a FHIR Bundle (resourceType must be Bundle)");
  const std::string type = string_member(bundle, "type");
  if (type != "history")
    bad(fmt::format("Bundle.type must be history for a subscription notification, not '{}'",
                    type.substr(0, 40)));
  const Json& entries = array_member(bundle, "entry");
  if (entries.empty())
    bad("Bundle.entry is empty: a notification starts with its SubscriptionStatus");
  const Json& status = fhir::object_member(entries.at(0), "resource");
  const std::string status_type = fhir::resource_type(status);
  Notification n;
  if (status_type == "Parameters") {
    read_parameters(status, n);
  } else if (status_type == "SubscriptionStatus") {
    read_subscription_status(status, n);
  } else {
    bad("Bundle.entry[0].resource must be a SubscriptionStatus (R4B) or a Parameters of the "
        "backport-subscription-status-r4 profile (R4)");
  }
  if (n.subscription.empty()) bad("the SubscriptionStatus names no subscription");
  if (n.type == "event-notification" && n.events.empty())
    bad("an event-notification lists no notification event");

  // Each event's focus and context resolve to the Bundle's own entries, as a chart's references
  // do (relative, absolute, versioned, urn:uuid fullUrls): with their resources, the content is
  // full-resource; named only, id-only. The status entry itself is never a focus.
  const fhir::BundleIndex index(bundle);
  const Json* status_resource = &status;
  bool any_focus = false;
  bool all_resolved = true;
  for (auto& e : n.events) {
    if (e.focus.empty()) continue;
    any_focus = true;
    const Json* focus = index.resolve(e.focus);
    if (focus == nullptr || focus == status_resource) {
      all_resolved = false;
      continue;
    }
    e.resources.push_back(*focus);
    for (const auto& ctx : e.additional_context)
      if (const Json* c = index.resolve(ctx); c != nullptr && c != status_resource)
        e.resources.push_back(*c);
  }
  if (any_focus) n.content = all_resolved ? "full-resource" : "id-only";
  if (n.content != "full-resource")
    for (auto& e : n.events) e.resources = Json::array();
  return n;
}

}  // namespace chartflow::handlers::fhir_subscriptions
