#include "handlers/fhir_subscriptions/notification_intake.hpp"

#include <fmt/format.h>

#include "handlers/fhir_subscriptions/subscription_store.hpp"

namespace chartflow::handlers::fhir_subscriptions {

namespace {

// Epoch 1 keeps the key events had before epochs existed, so they still find their duplicates.
std::string dedup_key(const std::string& name, int epoch, std::int64_t number) {
  if (epoch <= 1) return fmt::format("fhir:{}:{}", name, number);
  return fmt::format("fhir:{}:{}:{}", name, epoch, number);
}

}  // namespace

void ingest_events(EngineServices& engine, const AuditEntry& audit, const std::string& name,
                   int epoch, const Notification& n, const std::string& via, IntakeOutcome& out) {
  for (const auto& e : n.events) {
    EventInput ev;
    ev.type = kNotificationEvent;
    ev.dedup_key = dedup_key(name, epoch, e.number);
    ev.source = "fhir";
    ev.body = event_body(name, epoch, n, e);
    auto result = engine.ingest(std::move(ev), [&](Sql& sql, EventInput&) {
      if (!claim_event(sql, name, epoch, e.number, via)) return false;
      AuditEntry entry = audit;
      entry.detail = {{"event_number", e.number}, {"epoch", epoch}, {"via", via}};
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

Json event_body(const std::string& name, int epoch, const Notification& n,
                const NotificationEvent& e) {
  Json context = Json::array();
  for (const auto& c : e.additional_context) context.push_back(c);
  return {{"subscription", name},     {"subscription_reference", n.subscription},
          {"epoch", epoch},           {"topic", n.topic},
          {"event_number", e.number}, {"timestamp", e.timestamp},
          {"focus", e.focus},         {"additional_context", context},
          {"content", n.content},     {"resources", e.resources}};
}

}  // namespace chartflow::handlers::fhir_subscriptions
