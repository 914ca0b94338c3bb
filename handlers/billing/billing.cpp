#include "handlers/billing/billing.hpp"

#include <fmt/format.h>

#include <map>
#include <unordered_map>

#include "engine/util/sql_rows.hpp"
#include "handlers/common/chart_cache.hpp"
#include "handlers/common/chart_event.hpp"
#include "handlers/fhir/fhir_json.hpp"
#include "handlers/insurance/outbox.hpp"

namespace chartflow::handlers::billing {

using insurance::build_claim_notification;
using insurance::enqueue_notification;
using insurance::notification_key;
using insurance::NotificationLine;
namespace {

// All items in one statement; the unique key turns already billed items into no-ops and
// RETURNING tells which ones are new.
// The new entries (an item billed before is a no-op: UNIQUE (chart_id, source_ref)) and the
// chart's entry count after them, in one statement; the count's snapshot predates the insert,
// so the inserted rows are added to it.
constexpr const char* kInsertEntries =
    "WITH ins AS (INSERT INTO ledger_entry (chart_id, revision, source_ref, kind, code, "
    "code_system, description, quantity, unit, amount, currency, amount_source, payor) "
    "SELECT $1, $2, i.source_ref, i.kind, i.code, i.code_system, i.description, i.quantity, "
    "i.unit, i.amount, i.currency, i.amount_source, nullif(i.payor, '') "
    "FROM jsonb_to_recordset($3::jsonb) AS i(source_ref text, kind text, code text, "
    "code_system text, description text, quantity numeric, unit text, amount numeric, "
    "currency text, amount_source text, payor text) "
    "ON CONFLICT (chart_id, source_ref) DO NOTHING RETURNING source_ref) "
    "SELECT (SELECT coalesce(json_agg(source_ref), '[]') FROM ins)::text AS added, "
    "(SELECT count(*) FROM ledger_entry WHERE chart_id = $1) + (SELECT count(*) FROM ins) "
    "AS entries_total";

}  // namespace

BillingHandler::BillingHandler(std::shared_ptr<const PriceList> prices)
    : prices_(std::move(prices)) {}

StepOutcome BillingHandler::run(StepContext& ctx) {
  auto event = parse_chart_event(ctx.event());
  if (!event) return Fail{"event body lacks a valid chart_id and revision", true};
  Sql& sql = ctx.sql();
  auto chart =
      ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash);
  if (!chart) {
    return Fail{fmt::format("chart {} revision {} not found", event->chart_id, event->revision),
                true};
  }
  const auto& index = chart->index;
  const auto items = extract_billable_items(index, *prices_);

  Json records = Json::array();
  std::unordered_map<std::string, const BillableItem*> by_ref;
  for (const auto& item : items) {
    if (!by_ref.emplace(item.source_ref, &item).second) continue;
    records.push_back(Json{{"source_ref", item.source_ref},
                           {"kind", item.kind},
                           {"code", item.code},
                           {"code_system", item.system},
                           {"description", item.description},
                           {"quantity", item.quantity},
                           {"unit", item.unit},
                           {"amount", fhir::format_cents(item.amount_cents)},
                           {"currency", item.currency},
                           {"amount_source", item.amount_source},
                           {"payor", item.payor}});
  }
  auto inserted = util::query_one(
      sql, kInsertEntries, {event->chart_id, std::to_string(event->revision), records.dump()});
  const Json added =
      Json::parse(inserted ? util::column_text(*inserted, "added").value_or("[]") : "[]");
  const auto entries_total =
      inserted ? util::column_int(*inserted, "entries_total").value_or(0) : 0;

  // New entries per payor -> one notification each, keyed by this step's idempotency key.
  std::map<std::string, std::vector<NotificationLine>> per_payor;
  std::int64_t amount_added = 0;
  std::size_t without_payor = 0;
  for (const auto& ref : added) {
    auto it = by_ref.find(ref.is_string() ? ref.get<std::string>() : std::string());
    if (it == by_ref.end()) continue;
    const BillableItem& item = *it->second;
    amount_added += item.amount_cents;
    if (item.payor.empty()) {
      ++without_payor;
      continue;
    }
    per_payor[item.payor].push_back(NotificationLine{
        item.source_ref, item.code, item.system, item.quantity, item.amount_cents, item.currency});
  }
  std::string patient_ref;
  if (const Json* patient = index.patient()) patient_ref = index.ref_of(*patient);
  int notifications = 0;
  for (const auto& [payor, lines] : per_payor) {
    const std::string key =
        notification_key(ctx.idempotency_key(), "claim", event->chart_id, payor);
    Json payload =
        build_claim_notification(event->chart_id, patient_ref, payor, "claim", key, lines);
    if (enqueue_notification(sql, event->chart_id, payor, "claim", key, payload)) ++notifications;
  }
  if (without_payor > 0) {
    ctx.log(LogLevel::kWarning, "event=billing_no_insurer",
            {{"chart_id", event->chart_id}, {"entries", without_payor}});
  }

  ctx.log(LogLevel::kInfo, "event=chart_billed",
          {{"chart_id", event->chart_id},
           {"revision", event->revision},
           {"entries_added", added.size()},
           {"notifications", notifications}});
  return Completed{Json{{"entries_added", added.size()},
                        {"entries_total", entries_total},
                        {"amount_added", static_cast<double>(amount_added) / 100.0},
                        {"currency", prices_->currency},
                        {"notifications", notifications}}};
}

}  // namespace chartflow::handlers::billing
