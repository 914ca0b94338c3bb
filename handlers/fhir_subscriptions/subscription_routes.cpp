#include "handlers/fhir_subscriptions/subscription_routes.hpp"

#include <fmt/format.h>

#include <cctype>

#include "engine/util/hash.hpp"
#include "handlers/fhir_subscriptions/notification_intake.hpp"
#include "handlers/fhir_subscriptions/subscription_store.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using http::Access;
using http::HttpError;
using http::Request;
using http::Response;
using http::Role;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The URL's name, cut to what an audit record may hold (it is the caller's text).
std::string shown_name(const std::string& name) { return name.substr(0, 64); }

// Refuses a request: counted as the engine's doors count unauthenticated refusals (ids and the
// reason only), then answered.
[[noreturn]] void refuse(EngineServices& engine, const Request& req, int status,
                         const std::string& reason, const std::string& message) {
  auto entry = http::audit_entry(req, kNotificationAction, "fhir_subscription",
                                 shown_name(req.param("name")), "denied");
  entry.detail = {{"reason", fmt::format("{} ({})", reason, status)}, {"path", req.path}};
  engine.count_refusal(entry);
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

  IntakeOutcome out;
  int epoch = 1;
  engine.transaction([&](Sql& sql) { epoch = record_status(sql, name, n); });
  ingest_events(engine, http::audit_entry(req, kNotificationAction, "fhir_subscription", name),
                name, epoch, n, "notification", out);
  std::vector<Gap> missing;
  engine.transaction([&](Sql& sql) { missing = gaps(sql, name, true); });
  // Missed events are asked for by a step of their own (fhir_recover_gaps), never within the
  // sender's request; one per (epoch, highest number missing), so a repeated notification
  // announcing the same gap starts no second one.
  Json recovery = nullptr;
  if (!missing.empty() && sub->events_operation) {
    EventInput gap;
    gap.type = kGapEvent;
    gap.dedup_key = fmt::format("fhir-gap:{}:{}:{}", name, epoch, missing.back().to);
    gap.source = "fhir";
    gap.body = {
        {"subscription", name}, {"epoch", epoch}, {"subscription_reference", n.subscription}};
    const auto started = engine.ingest(std::move(gap));
    recovery = {{"runs", started.run_ids}, {"duplicate", started.duplicate}};
  }
  Json body = {{"subscription", name},     {"type", n.type},
               {"form", n.form},           {"content", n.content},
               {"accepted", out.accepted}, {"duplicates", out.duplicates},
               {"runs", out.runs},         {"gaps", gaps_json(missing)}};
  if (!recovery.is_null()) body["recovery"] = recovery;
  return Response::json(200, body);
}

}  // namespace

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
