#include "handlers/billing/billing.hpp"

#include <fmt/format.h>

#include <map>
#include <set>
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

constexpr const char* kBilledRefs = "SELECT source_ref FROM ledger_entry WHERE chart_id = $1";

// The chart's billable items, one per source_ref.
std::vector<BillableItem> unique_items(const std::vector<BillableItem>& items) {
  std::vector<BillableItem> out;
  std::set<std::string> seen;
  for (const auto& item : items)
    if (seen.insert(item.source_ref).second) out.push_back(item);
  return out;
}

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

  // New entries per payor -> one notification each, keyed by this step's idempotency key. A
  // reprocess with resend (StepContext::rerun) notifies the items billed before again as well,
  // under this run's keys; preview_rerun counts the same.
  std::map<std::string, std::vector<NotificationLine>> per_payor;
  std::int64_t amount_added = 0;
  std::size_t without_payor = 0;
  std::set<std::string> added_refs;
  for (const auto& ref : added) {
    auto it = by_ref.find(ref.is_string() ? ref.get<std::string>() : std::string());
    if (it == by_ref.end()) continue;
    added_refs.insert(it->first);
    const BillableItem& item = *it->second;
    amount_added += item.amount_cents;
    if (item.payor.empty()) {
      ++without_payor;
      continue;
    }
    per_payor[item.payor].push_back(NotificationLine{
        item.source_ref, item.code, item.system, item.quantity, item.amount_cents, item.currency});
  }
  if (ctx.rerun().value("resend", false))
    for (const auto& item : unique_items(items))
      if (!added_refs.count(item.source_ref) && !item.payor.empty())
        per_payor[item.payor].push_back(NotificationLine{item.source_ref, item.code, item.system,
                                                         item.quantity, item.amount_cents,
                                                         item.currency});
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

std::optional<Json> BillingHandler::preview_rerun(Sql& sql, const RerunPreview& p) const {
  auto event = parse_chart_event(*p.event);
  if (!event) return std::nullopt;
  auto chart =
      ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash);
  if (!chart) return std::nullopt;
  std::set<std::string> billed;
  for (const auto& row : util::query_rows(sql, kBilledRefs, {event->chart_id}))
    if (auto ref = util::column_text(row, "source_ref")) billed.insert(*ref);
  const bool resend = p.flags.value("resend", false);
  std::int64_t added = 0, skipped = 0;
  std::set<std::string> payors_new, payors_billed;
  for (const auto& item : unique_items(extract_billable_items(chart->index, *prices_))) {
    const bool present = billed.count(item.source_ref) != 0;
    ++(present ? skipped : added);
    if (!item.payor.empty()) (present ? payors_billed : payors_new).insert(item.payor);
  }
  std::set<std::string> notified = payors_new;
  std::int64_t not_resent = 0;
  for (const auto& payor : payors_billed) {
    if (resend)
      notified.insert(payor);
    else if (!payors_new.count(payor))
      ++not_resent;
  }
  Json effects = Json::array();
  auto add = [&](const char* effect, const char* action, std::int64_t n) {
    if (n > 0) effects.push_back({{"effect", effect}, {"action", action}, {"count", n}});
  };
  add("ledger_entry", "add", added);
  add("ledger_entry", "skip", skipped);
  add("insurer_notification", "send", static_cast<std::int64_t>(notified.size()));
  add("insurer_notification", "not_resent", not_resent);
  return effects;
}

}  // namespace chartflow::handlers::billing
