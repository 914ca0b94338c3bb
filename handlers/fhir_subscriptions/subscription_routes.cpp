#include "handlers/fhir_subscriptions/subscription_routes.hpp"

#include <fmt/format.h>

#include <cctype>

#include "engine/util/hash.hpp"
#include "handlers/fhir_subscriptions/subscription_store.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using http::Access;
using http::HttpError;
using http::Request;
using http::Response;
using http::Role;

// Ranges of missed events asked for per notification; the rest wait for the next one.
constexpr std::size_t kGapsAskedAtOnce = 5;
constexpr const char* kAction = "fhir.notification";

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The URL's name, cut to what an audit record may hold (it is the caller's text).
std::string shown_name(const std::string& name) { return name.substr(0, 64); }

// Refuses a request: audited (ids and the reason only), then answered.
[[noreturn]] void refuse(EngineServices& engine, const Request& req, int status,
                         const std::string& reason, const std::string& message) {
  auto entry =
      http::audit_entry(req, kAction, "fhir_subscription", shown_name(req.param("name")), "denied");
  entry.detail = {{"reason", reason}, {"status", status}};
  engine.audit_now(entry);
  throw HttpError{status, message};
}

// The sender's proof: its secret in the configured header (for Authorization, as a bearer
// token), compared in constant time.
std::string authentication_failure(const Subscription& sub, const Request& req) {
  auto presented = req.header(sub.header);
  if (!presented || presented->empty()) return "no credential";
  std::string got = *presented;
  if (sub.header == "authorization") {
    if (got.size() < 7 || lower(got.substr(0, 7)) != "bearer ") return "not a bearer credential";
    got = got.substr(7);
  }
  const util::AccessToken secret = sub.secret->get();
  if (secret.value.empty()) return "the subscription's secret cannot be read";
  return util::constant_time_equal(got, secret.value) ? "" : "wrong secret";
}

struct Outcome {
  Json accepted = Json::array();    // event numbers that became engine events
  Json duplicates = Json::array();  // numbers received before
  Json runs = Json::array();
};

// Turns each event of `n` into an engine event, once per number.
void ingest_events(EngineServices& engine, const Request& req, const std::string& name,
                   const Notification& n, const std::string& via, Outcome& out) {
  for (const auto& e : n.events) {
    EventInput ev;
    ev.type = kNotificationEvent;
    ev.dedup_key = fmt::format("fhir:{}:{}", name, e.number);
    ev.source = "fhir";
    ev.body = event_body(name, n, e);
    auto result = engine.ingest(std::move(ev), [&](Sql& sql, EventInput&) {
      if (!claim_event(sql, name, e.number, via)) return false;
      auto entry = http::audit_entry(req, kAction, "fhir_subscription", name);
      entry.detail = {{"event_number", e.number}, {"via", via}};
      engine.audit(sql, entry);
      return true;
    });
    if (result.duplicate) {
      out.duplicates.push_back(e.number);
      continue;
    }
    engine.count_event(kNotificationEvent);
    out.accepted.push_back(e.number);
    for (auto id : result.run_ids) out.runs.push_back(id);
  }
}

// Asks the server for the missed events of `missing` and ingests what comes back. Returns ""
// or why it could not.
std::string recover(EngineServices& engine, const Request& req, const Subscription& sub,
                    const std::string& subscription_ref, const std::vector<Gap>& missing,
                    Outcome& out) {
  const std::string key = reference_key(subscription_ref);
  if (key.rfind("Subscription/", 0) != 0)
    return "the notification names no Subscription/{id} to ask $events of";
  const std::string id = key.substr(13);
  for (char c : id)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '.')
      return "the Subscription id is not a FHIR id";
  std::size_t asked = 0;
  for (const auto& gap : missing) {
    if (asked++ == kGapsAskedAtOnce) break;
    const std::string url =
        fmt::format("{}/Subscription/{}/$events?eventsSinceNumber={}&eventsUntilNumber={}",
                    sub.fhir_base_url, id, gap.from, gap.to);
    const auto answer = util::http_get(url, {{"Accept", "application/fhir+json"}}, sub.http);
    if (!answer.error.empty()) return "$events: " + answer.error;
    if (!answer.ok()) return fmt::format("$events: the server answered {}", answer.status);
    if (answer.truncated) return "$events: the answer is larger than chartflow reads";
    Notification found;
    try {
      found = parse_notification(http::parse_json_text(answer.body));
    } catch (const HttpError& e) {
      return "$events: " + e.message;
    } catch (const NotificationError& e) {
      return "$events: " + e.message;
    }
    // Only what was asked for: a server answering more must not skip our dedupe's order.
    std::vector<NotificationEvent> wanted;
    for (auto& e : found.events)
      if (e.number >= gap.from && e.number <= gap.to) wanted.push_back(std::move(e));
    found.events = std::move(wanted);
    ingest_events(engine, req, sub.name, found, "events", out);
  }
  return "";
}

Json gaps_json(const std::vector<Gap>& list) {
  Json out = Json::array();
  for (const auto& g : list) out.push_back({{"from", g.from}, {"to", g.to}});
  return out;
}

Response receive(EngineServices& engine, Request& req, const SubscriptionSettings& settings) {
  const std::string& name = req.param("name");
  const Subscription* sub = settings.find(name);
  if (sub == nullptr)
    refuse(engine, req, 404, "unknown subscription", "no FHIR subscription of that name");
  if (std::string why = authentication_failure(*sub, req); !why.empty())
    refuse(engine, req, 401, why, "the subscription's secret is missing or wrong");
  req.principal = http::Principal{"fhir-subscription:" + name, name, Role::kUploader, {}, false};

  Notification n;
  try {
    n = parse_notification(http::parse_json_body(req));
  } catch (const NotificationError& e) {
    throw HttpError{400, "not a subscription notification: " + e.message};
  }
  if (n.type == "query-status" || n.type == "query-event")
    throw HttpError{400, "a " + n.type + " Bundle answers $status or $events; it is not pushed"};

  Outcome out;
  engine.transaction([&](Sql& sql) { record_status(sql, name, n); });
  ingest_events(engine, req, name, n, "notification", out);
  std::vector<Gap> missing;
  engine.transaction([&](Sql& sql) { missing = gaps(sql, name, true); });
  Json recovery = nullptr;
  if (!missing.empty() && sub->events_operation) {
    std::string subscription_ref = n.subscription;
    const std::string error = recover(engine, req, *sub, subscription_ref, missing, out);
    engine.transaction([&](Sql& sql) {
      record_recovery(sql, name, error);
      missing = gaps(sql, name, true);
    });
    recovery = error.empty() ? Json("ok") : Json(error);
  }
  Json body = {{"subscription", name},     {"type", n.type},
               {"form", n.form},           {"content", n.content},
               {"accepted", out.accepted}, {"duplicates", out.duplicates},
               {"runs", out.runs},         {"gaps", gaps_json(missing)}};
  if (!recovery.is_null()) body["recovery"] = recovery;
  return Response::json(200, body);
}

}  // namespace

Json event_body(const std::string& name, const Notification& n, const NotificationEvent& e) {
  Json context = Json::array();
  for (const auto& c : e.additional_context) context.push_back(c);
  return {{"subscription", name},
          {"subscription_reference", n.subscription},
          {"topic", n.topic},
          {"event_number", e.number},
          {"timestamp", e.timestamp},
          {"focus", e.focus},
          {"additional_context", context},
          {"content", n.content},
          {"resources", e.resources}};
}

void add_subscription_routes(ModuleRegistry& module,
                             std::shared_ptr<const SubscriptionSettings> settings) {
  module.add_route(
      "POST", "/fhir/subscriptions/{name}", "fhir_notification", Access::self(),
      [settings](EngineServices& engine, Request& req) { return receive(engine, req, *settings); });
  module.add_route("GET", "/fhir/subscriptions/{name}/$status", "fhir_subscription_status",
                   Access::of({Role::kOperator}), [settings](EngineServices& engine, Request& req) {
                     const std::string& name = req.param("name");
                     const Subscription* sub = settings->find(name);
                     if (sub == nullptr) throw HttpError{404, "no FHIR subscription of that name"};
                     Json state;
                     std::vector<Gap> missing;
                     engine.read([&](Sql& sql) {
                       state = state_json(sql, name);
                       missing = gaps(sql, name, false);
                     });
                     Json body = {{"subscription", name},
                                  {"events_operation", sub->events_operation},
                                  {"fetches", !sub->fhir_base_url.empty()},
                                  {"gaps", gaps_json(missing)}};
                     if (state.is_null()) {
                       body["last_seen_at"] = nullptr;
                     } else {
                       body.update(state);
                     }
                     return Response::json(200, body);
                   });
}

}  // namespace chartflow::handlers::fhir_subscriptions
