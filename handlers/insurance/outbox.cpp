#include "handlers/insurance/outbox.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "engine/util/hash.hpp"
#include "engine/util/http_post.hpp"
#include "engine/util/sql_rows.hpp"

namespace chartflow::handlers::insurance {
namespace {

constexpr const char* kInsertOutbox =
    "INSERT INTO insurer_outbox (chart_id, payor, kind, idempotency_key, payload) "
    "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id";

// SKIP LOCKED: a row another step is delivering right now is its business, not ours.
constexpr const char* kPendingAll =
    "SELECT id, payor, kind, idempotency_key, payload::text AS payload, attempts "
    "FROM insurer_outbox WHERE chart_id = $1 AND status = 'pending' "
    "ORDER BY id FOR UPDATE SKIP LOCKED";
constexpr const char* kPendingKind =
    "SELECT id, payor, kind, idempotency_key, payload::text AS payload, attempts "
    "FROM insurer_outbox WHERE chart_id = $1 AND status = 'pending' AND kind = $2 "
    "ORDER BY id FOR UPDATE SKIP LOCKED";

// The attempt and the row's new state in one statement: one round trip per delivery.
constexpr const char* kRecordDelivered =
    "WITH a AS (INSERT INTO insurer_delivery_attempt (outbox_id, attempt, status_code, error) "
    "VALUES ($1, $2, $3, NULL)) "
    "UPDATE insurer_outbox SET status = 'delivered', attempts = $2, last_error = NULL, "
    "delivered_at = now(), updated_at = now() WHERE id = $1";
constexpr const char* kRecordFailed =
    "WITH a AS (INSERT INTO insurer_delivery_attempt (outbox_id, attempt, status_code, error) "
    "VALUES ($1, $2, $3, $4)) "
    "UPDATE insurer_outbox SET attempts = $2, last_error = $4, updated_at = now() WHERE id = $1";
constexpr const char* kMarkSkipped =
    "UPDATE insurer_outbox SET status = 'skipped', last_error = $2, updated_at = now() "
    "WHERE id = $1";

Json money(std::int64_t cents, const std::string& currency) {
  return Json{{"value", static_cast<double>(cents) / 100.0}, {"currency", currency}};
}

bool plain(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string notification_key(const std::string& scope, const std::string& kind,
                             const std::string& chart_id, const std::string& payor) {
  const std::string payor_part = plain(payor) ? payor : util::sha256_hex(payor).substr(0, 32);
  return fmt::format("{}:{}:{}:{}", scope, kind, chart_id, payor_part);
}

Json build_claim_notification(const std::string& chart_id, const std::string& patient_ref,
                              const std::string& payor, const std::string& kind,
                              const std::string& idempotency_key,
                              const std::vector<NotificationLine>& lines) {
  Json items = Json::array();
  std::int64_t total = 0;
  std::string currency = lines.empty() ? std::string("USD") : lines.front().currency;
  int sequence = 0;
  for (const auto& line : lines) {
    Json coding = {{"code", line.code}};
    if (!line.code_system.empty()) coding["system"] = line.code_system;
    items.push_back(Json{{"sequence", ++sequence},
                         {"productOrService", {{"coding", Json::array({coding})}}},
                         {"quantity", {{"value", line.quantity}}},
                         {"net", money(line.amount_cents, line.currency)},
                         {"extension", Json::array({Json{{"url", "urn:chartflow:ledger-source"},
                                                         {"valueString", line.source_ref}}})}});
    total += line.amount_cents;
  }
  Json claim = {
      {"resourceType", "Claim"},
      {"identifier", Json::array({Json{{"system", "urn:chartflow:insurer-notification"},
                                       {"value", idempotency_key}}})},
      {"status", "active"},
      {"use", "claim"},
      {"insurer", {{"display", payor}}},
      {"item", std::move(items)},
      {"total", money(total, currency)},
      {"extension",
       Json::array({Json{{"url", "urn:chartflow:chart-id"}, {"valueString", chart_id}},
                    Json{{"url", "urn:chartflow:notification-kind"}, {"valueCode", kind}}})}};
  if (!patient_ref.empty()) claim["patient"] = {{"reference", patient_ref}};
  return claim;
}

std::optional<std::int64_t> enqueue_notification(Sql& sql, const std::string& chart_id,
                                                 const std::string& payor, const std::string& kind,
                                                 const std::string& idempotency_key,
                                                 const Json& payload) {
  auto row =
      util::query_one(sql, kInsertOutbox, {chart_id, payor, kind, idempotency_key, payload.dump()});
  if (!row) return std::nullopt;
  return util::column_int(*row, "id");
}

Json DeliveryReport::to_json() const {
  return Json{{"delivered", delivered}, {"skipped", skipped}, {"failed", failed}};
}

DeliveryReport deliver_pending(StepContext& ctx, const InsurerSettings& settings,
                               const std::string& chart_id,
                               const std::optional<std::string>& kind) {
  DeliveryReport report;
  Sql& sql = ctx.sql();
  Json rows = kind ? util::query_rows(sql, kPendingKind, {chart_id, *kind})
                   : util::query_rows(sql, kPendingAll, {chart_id});
  for (const auto& row : rows) {
    const std::int64_t id = util::column_int(row, "id").value_or(0);
    const std::string payor = util::column_text(row, "payor").value_or("");
    const std::string key = util::column_text(row, "idempotency_key").value_or("");
    const std::string id_text = std::to_string(id);
    auto endpoint = settings.endpoint_for(payor);
    if (!endpoint || endpoint->skip || endpoint->url.empty()) {
      sql.query(kMarkSkipped, {id_text, std::string("no endpoint configured for payor")});
      ctx.log(LogLevel::kWarning, "event=insurer_notification_skipped reason=no_endpoint",
              {{"chart_id", chart_id}, {"outbox_id", id}, {"payor", payor}});
      ++report.skipped;
      continue;
    }
    const int attempt = std::max<int>(
        static_cast<int>(util::column_int(row, "attempts").value_or(0)) + 1, ctx.attempt());
    util::HttpResult result = util::http_post(
        endpoint->url, util::column_text(row, "payload").value_or("{}"),
        {{"Content-Type", "application/fhir+json"}, {"Idempotency-Key", key}}, endpoint->http);
    std::optional<std::string> status_code;
    if (result.status != 0) status_code = std::to_string(result.status);
    std::string error = result.ok()             ? std::string()
                        : !result.error.empty() ? result.error
                                                : fmt::format("HTTP status {}", result.status);
    if (result.ok()) {
      sql.query(kRecordDelivered, {id_text, std::to_string(attempt), status_code});
      ctx.log(LogLevel::kInfo, "event=insurer_notification_delivered",
              {{"chart_id", chart_id}, {"outbox_id", id}, {"payor", payor}, {"attempt", attempt}});
      ++report.delivered;
    } else {
      sql.query(kRecordFailed, {id_text, std::to_string(attempt), status_code, error});
      ctx.log(LogLevel::kWarning, "event=insurer_notification_failed",
              {{"chart_id", chart_id},
               {"outbox_id", id},
               {"payor", payor},
               {"attempt", attempt},
               {"error", error}});
      ++report.failed;
      report.failed_ids.push_back(id);
      if (report.first_error.empty()) report.first_error = error;
    }
  }
  return report;
}

}  // namespace chartflow::handlers::insurance
