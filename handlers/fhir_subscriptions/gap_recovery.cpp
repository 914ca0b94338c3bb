#include "handlers/fhir_subscriptions/gap_recovery.hpp"

#include <fmt/format.h>

#include <cctype>

#include "engine/util/http_post.hpp"
#include "handlers/fhir/fhir_json.hpp"
#include "handlers/fhir_subscriptions/notification_intake.hpp"
#include "handlers/fhir_subscriptions/subscription_store.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

// The FHIR id of "…/Subscription/{id}", or "" when the reference names none.
std::string subscription_id(const std::string& reference) {
  const std::string key = reference_key(reference);
  if (key.rfind("Subscription/", 0) != 0) return {};
  std::string id = key.substr(13);
  for (char c : id)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '.') return {};
  return id;
}

// Asks for one range and ingests what comes back; "" or why it could not.
std::string recover_range(EngineServices& engine, const Subscription& sub, const std::string& id,
                          int epoch, const Gap& gap, IntakeOutcome& out) {
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
  } catch (const http::HttpError& e) {
    return "$events: " + e.message;
  } catch (const NotificationError& e) {
    return "$events: " + e.message;
  }
  // Only what was asked for: a server answering more must not skip our dedupe's order.
  std::vector<NotificationEvent> wanted;
  for (auto& e : found.events)
    if (e.number >= gap.from && e.number <= gap.to) wanted.push_back(std::move(e));
  found.events = std::move(wanted);
  AuditEntry audit;
  audit.actor = "fhir-subscription:" + sub.name;
  audit.actor_name = sub.name;
  audit.action = kNotificationAction;
  audit.resource_type = "fhir_subscription";
  audit.resource_id = sub.name;
  ingest_events(engine, audit, sub.name, epoch, found, "events", out);
  return "";
}

}  // namespace

StepOutcome GapRecoveryHandler::run(StepContext& ctx) {
  if (ctx.event_type() != kGapEvent)
    return Fail{"fhir_recover_gaps runs on fhir.gap events, not " + ctx.event_type(), true};
  const Json& ev = ctx.event();
  const std::string name = fhir::string_member(ev, "subscription");
  const Subscription* sub = settings_->find(name);
  if (sub == nullptr) return Fail{"FHIR subscription " + name + " is not configured", true};
  if (!sub->events_operation || sub->fhir_base_url.empty())
    return Fail{"FHIR subscription " + name + " does not offer $events", true};
  const Json* epoch_value = fhir::member(ev, "epoch");
  if (epoch_value == nullptr || !epoch_value->is_number_integer())
    return Fail{"the event has no epoch", true};
  const int epoch = epoch_value->get<int>();
  const std::string id = subscription_id(fhir::string_member(ev, "subscription_reference"));
  if (id.empty())
    return Fail{"the notification names no Subscription/{id} to ask $events of", true};
  EngineServices* engine = services_ ? services_->get() : nullptr;
  if (engine == nullptr) return Retry{"the engine's services are not bound yet", std::nullopt};

  // Each range's events commit as they arrive (their numbers taken then), so a retry asks only
  // for what is still missing.
  std::vector<Gap> missing;
  int current_epoch = epoch;
  engine->read([&](Sql& sql) {
    const Json state = state_json(sql, name);
    if (!state.is_null()) current_epoch = state.at("epoch").get<int>();
    missing = gaps(sql, name, false, kGapsAskedAtOnce);
  });
  if (current_epoch != epoch)
    return Completed{Json{{"recovered", 0}, {"reason", "a newer count of the subscription began"}}};

  IntakeOutcome out;
  std::string error;
  for (const auto& gap : missing) {
    error = recover_range(*engine, *sub, id, epoch, gap, out);
    if (!error.empty()) break;
  }
  std::size_t left = 0;
  engine->transaction([&](Sql& sql) {
    record_recovery(sql, name, error);
    left = gaps(sql, name, true).size();
  });
  if (!error.empty()) return Retry{error, std::nullopt};
  return Completed{Json{{"asked", missing.size()},
                        {"recovered", out.accepted.size()},
                        {"duplicates", out.duplicates.size()},
                        {"gaps_left", left}}};
}

}  // namespace chartflow::handlers::fhir_subscriptions
