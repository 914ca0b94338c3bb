#include "handlers/discharge/bill_outbox.hpp"

#include <fmt/format.h>

#include <optional>

#include "engine/util/http_post.hpp"
#include "engine/util/sql_rows.hpp"
#include "handlers/common/journal.hpp"

namespace chartflow::handlers::discharge {
namespace {

constexpr const char* kEnqueue =
    "INSERT INTO bill_delivery (chart_id, channel, channel_type, target, invoice_id, "
    "idempotency_key, body, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending') "
    "ON CONFLICT (chart_id, channel) DO NOTHING RETURNING id";

// A plain read: the step's transaction never locks these rows, so the journal's writes to them
// never wait on this step (or on an earlier step of the same worker batch).
constexpr const char* kPending =
    "SELECT id, channel, channel_type FROM bill_delivery "
    "WHERE chart_id = $1 AND status = 'pending' AND ($2 = '' OR channel = $2) ORDER BY id";

// Journal, before the call: the row is this step's for the lease ($2 = the step's idempotency
// key, so its own next attempt takes it over), the attempt is on record as started, and the
// stored bytes and key come back as committed. No row: delivered meanwhile, another step's lease,
// or not committed yet.
constexpr const char* kClaim =
    "WITH c AS (UPDATE bill_delivery SET attempts = attempts + 1, target = $3, sending_by = $2, "
    "sending_until = now() + $4::bigint * interval '1 millisecond', updated_at = now() "
    "WHERE id = $1 AND status = 'pending' "
    "AND (sending_until IS NULL OR sending_until < now() OR sending_by = $2) "
    "RETURNING id, attempts, body, idempotency_key), "
    "a AS (INSERT INTO bill_delivery_attempt (delivery_id, attempt, sent_by) "
    "SELECT id, attempts, $2 FROM c RETURNING id, attempt) "
    "SELECT a.id AS attempt_id, a.attempt, c.body, c.idempotency_key FROM a, c";

// Journal, after the call: the answer, and the row's state, in one statement.
constexpr const char* kRecordDelivered =
    "WITH a AS (UPDATE bill_delivery_attempt SET answered_at = now(), status_code = $3 "
    "WHERE id = $2) "
    "UPDATE bill_delivery SET status = 'delivered', last_error = NULL, delivered_at = now(), "
    "sending_by = NULL, sending_until = NULL, updated_at = now() WHERE id = $1";
constexpr const char* kRecordFailed =
    "WITH a AS (UPDATE bill_delivery_attempt SET answered_at = now(), status_code = $3, "
    "error = $4 WHERE id = $2) "
    "UPDATE bill_delivery SET last_error = $4, sending_by = NULL, sending_until = NULL, "
    "updated_at = now() WHERE id = $1";

const BillChannel* find_channel(const BillDeliverySettings& settings, const std::string& name) {
  for (const auto& c : settings.channels)
    if (c.name == name) return &c;
  return nullptr;
}

struct Sent {
  std::optional<std::string> status_code;
  std::string error;  // "" = delivered
};

// `traceparent`: the attempt's, so the receiver's spans join the run's trace ("" for none).
Sent send(const BillChannel& channel, const std::string& chart_id, const std::string& body,
          const std::string& key, std::chrono::milliseconds timeout,
          const std::string& traceparent) {
  if (channel.type == "folder")
    return Sent{std::nullopt, write_bill_file(channel.dir, chart_id, body)};
  util::HttpPostOptions http = channel.http;
  http.timeout = timeout;
  util::HttpHeaders headers = {{"Idempotency-Key", key}};
  if (!traceparent.empty()) headers.emplace_back("traceparent", traceparent);
  util::HttpResult result = util::http_post(channel.url, body, headers, http);
  Sent sent;
  if (result.status != 0) sent.status_code = std::to_string(result.status);
  if (!result.ok())
    sent.error = result.error.empty() ? fmt::format("HTTP status {}", result.status) : result.error;
  return sent;
}

}  // namespace

std::string bill_key(const std::string& chart_id, const std::string& channel) {
  return fmt::format("bill:{}:{}", chart_id, channel);
}

std::string bill_body(const BillChannel& channel, const std::string& chart_id,
                      std::int64_t invoice_id, const Json& invoice, const std::string& bill_text) {
  if (channel.type == "folder") return bill_text;
  return Json{{"chart_id", chart_id},
              {"invoice_id", invoice_id},
              {"invoice", invoice},
              {"bill_text", bill_text}}
      .dump();
}

bool enqueue_bill(Sql& sql, const std::string& chart_id, std::int64_t invoice_id,
                  const BillChannel& channel, const std::string& body) {
  const std::string target = channel.type == "folder" ? channel.dir : channel.url;
  return util::query_one(sql, kEnqueue,
                         {chart_id, channel.name, channel.type, target, std::to_string(invoice_id),
                          bill_key(chart_id, channel.name), body})
      .has_value();
}

std::vector<std::string> bill_delivery_channels(Sql& sql, const std::string& chart_id) {
  std::vector<std::string> out;
  for (const auto& row : util::query_rows(
           sql, "SELECT channel FROM bill_delivery WHERE chart_id = $1 ORDER BY id", {chart_id}))
    out.push_back(util::column_text(row, "channel").value_or(""));
  return out;
}

Json BillSendReport::to_json() const {
  return Json{{"delivered", delivered},
              {"failed", failed},
              {"in_flight", in_flight},
              {"unconfigured", unconfigured}};
}

BillSendReport send_pending_bills(StepContext& ctx, const BillDeliverySettings& settings,
                                  std::chrono::milliseconds webhook_timeout,
                                  const std::string& chart_id, const std::string& only_channel) {
  BillSendReport report;
  for (const auto& row : util::query_rows(ctx.sql(), kPending, {chart_id, only_channel})) {
    const std::string id = util::column_text(row, "id").value_or("0");
    const std::string name = util::column_text(row, "channel").value_or("");
    const BillChannel* channel = find_channel(settings, name);
    if (channel == nullptr || channel->type != util::column_text(row, "channel_type")) {
      ctx.log(LogLevel::kWarning, "event=bill_channel_not_configured",
              {{"chart_id", chart_id}, {"channel", name}});
      report.unconfigured.push_back(name);
      continue;
    }
    const std::string target = channel->type == "folder" ? channel->dir : channel->url;
    auto claim = journal_one(ctx, kClaim,
                             {id, ctx.idempotency_key(), target, lease_millis(webhook_timeout)});
    if (!claim) {
      report.in_flight.push_back(name);
      continue;
    }
    const std::string attempt_id = util::column_text(*claim, "attempt_id").value_or("0");
    const Sent sent = send(*channel, chart_id, util::column_text(*claim, "body").value_or(""),
                           util::column_text(*claim, "idempotency_key").value_or(""),
                           webhook_timeout, ctx.traceparent());
    Json fields = {{"chart_id", chart_id},
                   {"channel", name},
                   {"attempt", util::column_int(*claim, "attempt").value_or(0)}};
    if (sent.error.empty()) {
      journal_one(ctx, kRecordDelivered, {id, attempt_id, sent.status_code});
      ctx.log(LogLevel::kInfo, "event=bill_delivered", fields);
      report.delivered.push_back(name);
      continue;
    }
    journal_one(ctx, kRecordFailed, {id, attempt_id, sent.status_code, sent.error});
    fields["error"] = sent.error;
    ctx.log(LogLevel::kWarning, "event=bill_delivery_failed", fields);
    report.failed.push_back(name);
    if (report.first_error.empty()) report.first_error = fmt::format("{}: {}", name, sent.error);
  }
  return report;
}

}  // namespace chartflow::handlers::discharge
