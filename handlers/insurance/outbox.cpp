#include "handlers/insurance/outbox.hpp"

#include <fmt/format.h>

#include <cctype>

#include "engine/util/hash.hpp"
#include "engine/util/http_post.hpp"
#include "engine/util/sql_rows.hpp"
#include "handlers/common/journal.hpp"

namespace chartflow::handlers::insurance {
namespace {

constexpr const char* kInsertOutbox =
    "INSERT INTO insurer_outbox (chart_id, payor, kind, idempotency_key, payload) "
    "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id";

// A plain read: rows are never locked in the step's transaction, so the journal's writes to them
// never wait on this step (or on an earlier step of the same worker batch).
constexpr const char* kPendingAll =
    "SELECT id, payor, idempotency_key FROM insurer_outbox "
    "WHERE chart_id = $1 AND status = 'pending' ORDER BY id";
constexpr const char* kPendingKind =
    "SELECT id, payor, idempotency_key FROM insurer_outbox "
    "WHERE chart_id = $1 AND status = 'pending' AND kind = $2 ORDER BY id";

// Journal, before the call: the row is this step's for the lease ($2 = the step's idempotency
// key, so its own next attempt takes it over), and the attempt is on record as started. No row:
// delivered or skipped meanwhile, another step's lease, or not committed yet.
constexpr const char* kClaim =
    "WITH c AS (UPDATE insurer_outbox SET attempts = attempts + 1, sending_by = $2, "
    "sending_until = now() + $3::bigint * interval '1 millisecond', updated_at = now() "
    "WHERE id = $1 AND status = 'pending' "
    "AND (sending_until IS NULL OR sending_until < now() OR sending_by = $2) "
    "RETURNING id, attempts, payload::text AS payload), "
    "a AS (INSERT INTO insurer_delivery_attempt (outbox_id, attempt, sent_by) "
    "SELECT id, attempts, $2 FROM c RETURNING id, attempt) "
    "SELECT a.id AS attempt_id, a.attempt, c.payload FROM a, c";

// Journal, after the call: the answer, and the row's state, in one statement.
constexpr const char* kRecordDelivered =
    "WITH a AS (UPDATE insurer_delivery_attempt SET answered_at = now(), status_code = $3 "
    "WHERE id = $2) "
    "UPDATE insurer_outbox SET status = 'delivered', last_error = NULL, delivered_at = now(), "
    "sending_by = NULL, sending_until = NULL, updated_at = now() WHERE id = $1";
constexpr const char* kRecordFailed =
    "WITH a AS (UPDATE insurer_delivery_attempt SET answered_at = now(), status_code = $3, "
    "error = $4 WHERE id = $2) "
    "UPDATE insurer_outbox SET last_error = $4, sending_by = NULL, sending_until = NULL, "
    "updated_at = now() WHERE id = $1";
constexpr const char* kMarkSkipped =
    "UPDATE insurer_outbox SET status = 'skipped', last_error = $2, updated_at = now() "
    "WHERE id = $1 AND status = 'pending' "
    "AND (sending_until IS NULL OR sending_until < now() OR sending_by = $3) RETURNING id";

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
  return Json{
      {"delivered", delivered}, {"skipped", skipped}, {"failed", failed}, {"in_flight", in_flight}};
}

namespace {

// One row: claim, POST, record the answer. Adds the outcome to `report`.
void deliver_one(StepContext& ctx, const InsurerEndpoint& endpoint, const std::string& chart_id,
                 const Json& row, DeliveryReport& report) {
  const std::string id = std::to_string(util::column_int(row, "id").value_or(0));
  const std::string payor = util::column_text(row, "payor").value_or("");
  const std::string key = util::column_text(row, "idempotency_key").value_or("");
  auto claim =
      journal_one(ctx, kClaim, {id, ctx.idempotency_key(), lease_millis(endpoint.http.timeout)});
  if (!claim) {
    ++report.in_flight;
    return;
  }
  const std::string attempt_id = util::column_text(*claim, "attempt_id").value_or("0");
  const auto attempt = util::column_int(*claim, "attempt").value_or(0);
  // The payload as committed, which is what every attempt sends; the insurer's spans join the
  // run's trace through its traceparent.
  util::HttpHeaders headers = {{"Content-Type", "application/fhir+json"}, {"Idempotency-Key", key}};
  if (auto traceparent = ctx.traceparent(); !traceparent.empty())
    headers.emplace_back("traceparent", std::move(traceparent));
  util::HttpResult result = util::http_post(
      endpoint.url, util::column_text(*claim, "payload").value_or("{}"), headers, endpoint.http);
  std::optional<std::string> status_code;
  if (result.status != 0) status_code = std::to_string(result.status);
  const Json fields = {{"chart_id", chart_id},
                       {"outbox_id", std::stoll(id)},
                       {"payor", payor},
                       {"attempt", attempt}};
  if (result.ok()) {
    journal_one(ctx, kRecordDelivered, {id, attempt_id, status_code});
    ctx.log(LogLevel::kInfo, "event=insurer_notification_delivered", fields);
    ++report.delivered;
    return;
  }
  const std::string error =
      !result.error.empty() ? result.error : fmt::format("HTTP status {}", result.status);
  journal_one(ctx, kRecordFailed, {id, attempt_id, status_code, error});
  Json failed = fields;
  failed["error"] = error;
  ctx.log(LogLevel::kWarning, "event=insurer_notification_failed", failed);
  ++report.failed;
  report.failed_ids.push_back(std::stoll(id));
  if (report.first_error.empty()) report.first_error = error;
}

}  // namespace

DeliveryReport deliver_pending(StepContext& ctx, const InsurerSettings& settings,
                               const std::string& chart_id,
                               const std::optional<std::string>& kind) {
  DeliveryReport report;
  Sql& sql = ctx.sql();
  const Json rows = kind ? util::query_rows(sql, kPendingKind, {chart_id, *kind})
                         : util::query_rows(sql, kPendingAll, {chart_id});
  for (const auto& row : rows) {
    const std::int64_t id = util::column_int(row, "id").value_or(0);
    const std::string payor = util::column_text(row, "payor").value_or("");
    auto endpoint = settings.endpoint_for(payor);
    if (!endpoint || endpoint->skip || endpoint->url.empty()) {
      if (!journal_one(ctx, kMarkSkipped,
                       {std::to_string(id), std::string("no endpoint configured for payor"),
                        ctx.idempotency_key()})) {
        ++report.in_flight;
        continue;
      }
      ctx.log(LogLevel::kWarning, "event=insurer_notification_skipped reason=no_endpoint",
              {{"chart_id", chart_id}, {"outbox_id", id}, {"payor", payor}});
      ++report.skipped;
      continue;
    }
    deliver_one(ctx, *endpoint, chart_id, row, report);
  }
  return report;
}

}  // namespace chartflow::handlers::insurance
