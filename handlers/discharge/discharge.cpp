#include "handlers/discharge/discharge.hpp"

#include <fmt/format.h>

#include <map>
#include <set>
#include <stdexcept>

#include "engine/util/sql_rows.hpp"
#include "engine/util/time.hpp"
#include "handlers/billing/billable_items.hpp"
#include "handlers/common/chart_cache.hpp"
#include "handlers/common/chart_event.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/discharge/bill_outbox.hpp"
#include "handlers/discharge/release.hpp"
#include "handlers/fhir/fhir_json.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"
#include "handlers/insurance/insurer_lookup.hpp"
#include "handlers/insurance/outbox.hpp"

namespace chartflow::handlers::discharge {

using insurance::build_claim_notification;
using insurance::enqueue_notification;
using insurance::notification_key;
using insurance::NotificationLine;
using insurance::primary_insurer;
namespace {

constexpr const char* kLedger =
    "SELECT source_ref, code, code_system, description, quantity, unit, amount, currency, payor "
    "FROM ledger_entry WHERE chart_id = $1 ORDER BY id";

constexpr const char* kFindInvoice =
    "SELECT id, total, currency, bill_text, fhir::text AS fhir FROM invoice WHERE chart_id = $1";

// UNIQUE (chart_id): the bill is closed once; a concurrent or repeated close finds it.
constexpr const char* kInsertInvoice =
    "INSERT INTO invoice (chart_id, revision, total, currency, fhir, bill_text) "
    "VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (chart_id) DO NOTHING RETURNING id";

std::vector<LedgerLine> load_ledger(Sql& sql, const std::string& chart_id) {
  std::vector<LedgerLine> lines;
  for (const auto& row : util::query_rows(sql, kLedger, {chart_id})) {
    LedgerLine l;
    l.source_ref = util::column_text(row, "source_ref").value_or("");
    l.code = util::column_text(row, "code").value_or("");
    l.code_system = util::column_text(row, "code_system").value_or("");
    l.description = util::column_text(row, "description").value_or("");
    l.quantity = util::column_double(row, "quantity").value_or(1);
    l.unit = util::column_text(row, "unit").value_or("");
    l.amount_cents = fhir::to_cents(util::column_double(row, "amount").value_or(0));
    l.currency = util::column_text(row, "currency").value_or(billing::kDefaultCurrency);
    l.payor = util::column_text(row, "payor").value_or("");
    lines.push_back(std::move(l));
  }
  return lines;
}

// The payors the bill's final notifications go to: those of the ledger's lines, else the
// chart's primary insurer.
std::vector<std::string> payors_of(const std::vector<LedgerLine>& lines,
                                   const fhir::BundleIndex& index) {
  std::vector<std::string> payors;
  std::set<std::string> seen;
  for (const auto& l : lines)
    if (!l.payor.empty() && seen.insert(l.payor).second) payors.push_back(l.payor);
  if (payors.empty())
    if (auto primary = primary_insurer(index)) payors.push_back(primary->payor);
  return payors;
}

// A reprocess with force sends a bill that went out before again: its stored bytes, under a key
// of this run's, so the receiver does not take it for the first one's retry. Rows from before
// the outbox kept no bytes and cannot be resent.
constexpr const char* kForceResend =
    "UPDATE bill_delivery SET status = 'pending', delivered_at = NULL, idempotency_key = $3, "
    "last_error = NULL, updated_at = now() WHERE chart_id = $1 AND channel = $2 AND "
    "status = 'delivered' AND body IS NOT NULL RETURNING id";
constexpr const char* kBillState =
    "SELECT status, (body IS NOT NULL) AS has_body FROM bill_delivery WHERE chart_id = $1 AND "
    "channel = $2";

std::string release_signal_of(const Json& settings) {
  const Json* value = fhir::member(settings, "release_signal");
  return string_setting(value, "release_signal", "");
}

}  // namespace

DischargeHandler::DischargeHandler(std::shared_ptr<const DischargeSettings> settings)
    : settings_(std::move(settings)) {}

void DischargeHandler::validate(const Json& config) const { release_signal_of(config); }

StepOutcome DischargeHandler::run(StepContext& ctx) {
  auto event = parse_chart_event(ctx.event());
  if (!event) return Fail{"event body lacks a valid chart_id and revision", true};
  std::string release_signal;
  try {
    release_signal = release_signal_of(merged_settings(ctx));
  } catch (const std::invalid_argument& e) {
    return Fail{e.what(), true};
  }
  Sql& sql = ctx.sql();
  auto chart =
      ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash);
  if (!chart) {
    return Fail{fmt::format("chart {} revision {} not found", event->chart_id, event->revision),
                true};
  }
  const auto& index = chart->index;
  const Wake* wake = ctx.wake();
  const bool signalled = wake != nullptr && wake->kind == Wake::Kind::kSignal &&
                         !release_signal.empty() && wake->signal == release_signal;
  // Released is what the stored revision says (or the release signal), never the event body.
  if (!signalled && !is_released(index)) {
    if (!release_signal.empty() && wake == nullptr)
      return WaitForSignal{release_signal, std::nullopt};
    return Completed{Json{{"released", false}}};
  }

  const std::string issued_at = util::iso8601(Clock::now());
  std::vector<LedgerLine> lines = load_ledger(sql, event->chart_id);
  std::string patient_ref;
  std::string patient_name;
  if (const Json* patient = index.patient()) {
    patient_ref = index.ref_of(*patient);
    patient_name = fhir::person_name(*patient);
  }
  const std::vector<std::string> payors = payors_of(lines, index);
  const Json& rerun = ctx.rerun();
  const bool resend = rerun.value("resend", false);
  const bool force = rerun.value("force", false) && !rerun.value("reason", "").empty();

  // The invoice: created once; later runs reuse it (and its text) unchanged.
  std::int64_t invoice_id = 0;
  std::string bill_text;
  Json invoice_json;
  std::string currency = lines.empty() ? settings_->currency : lines.front().currency;
  auto existing = util::query_one(sql, kFindInvoice, {event->chart_id});
  bool created = false;
  if (!existing) {
    BillInput input{event->chart_id, patient_ref, patient_name, issued_at, currency, lines, payors};
    invoice_json = build_invoice(input);
    bill_text = render_bill_text(input);
    auto row = util::query_one(
        sql, kInsertInvoice,
        {event->chart_id, std::to_string(event->revision), fhir::format_cents(total_cents(lines)),
         currency, invoice_json.dump(), bill_text});
    if (row) {
      invoice_id = util::column_int(*row, "id").value_or(0);
      created = true;
      // Subscribers of bill-issued learn of it exactly when the invoice exists (same commit).
      fhir_subscriptions::publish_invoice(sql, invoice_id);
    } else {
      existing = util::query_one(sql, kFindInvoice, {event->chart_id});
    }
  }
  std::int64_t total = total_cents(lines);
  if (existing) {
    invoice_id = util::column_int(*existing, "id").value_or(0);
    bill_text = util::column_text(*existing, "bill_text").value_or("");
    invoice_json = util::column_json(*existing, "fhir");
    total = fhir::to_cents(util::column_double(*existing, "total").value_or(0));
    currency = util::column_text(*existing, "currency").value_or(currency);
  }

  // Final claim update per payor; the key names the chart, not the run, so it is queued once per
  // chart however many runs close the bill. A later step delivers it (never this one: the
  // journal that records a delivery cannot see this transaction's rows).
  // A reprocess with resend queues it again, under this run's key.
  int final_queued = 0;
  if (created || resend) {
    std::map<std::string, std::vector<NotificationLine>> per_payor;
    for (const auto& p : payors) per_payor[p];
    for (const auto& l : lines) {
      const std::string& p = l.payor.empty() && !payors.empty() ? payors.front() : l.payor;
      if (p.empty()) continue;
      per_payor[p].push_back(NotificationLine{l.source_ref, l.code, l.code_system, l.quantity,
                                              l.amount_cents, l.currency});
    }
    for (const auto& [payor, payor_lines] : per_payor) {
      const std::string key = notification_key(created ? "chart" : ctx.idempotency_key(), "final",
                                               event->chart_id, payor);
      Json payload =
          build_claim_notification(event->chart_id, patient_ref, payor, "final", key, payor_lines);
      if (enqueue_notification(sql, event->chart_id, payor, "final", key, payload)) ++final_queued;
    }
  }

  // The patient's bill, queued once per channel with the bytes every attempt will send; the
  // bill_send step sends them. Channels added to the settings since the invoice was issued get
  // the stored invoice, unchanged.
  Json channels = Json::array();
  for (const auto& channel : settings_->bill_delivery.channels) {
    const std::string body =
        bill_body(channel, event->chart_id, invoice_id, invoice_json, bill_text);
    if (enqueue_bill(sql, event->chart_id, invoice_id, channel, body)) {
      channels.push_back(channel.name);
    } else if (force && !util::query_rows(sql, kForceResend,
                                          {event->chart_id, channel.name,
                                           bill_key(event->chart_id, channel.name) +
                                               ":resend:" + std::to_string(ctx.run_id())})
                             .empty()) {
      // The reason is in the reprocess job's audit record; the log names the job.
      channels.push_back(channel.name);
      ctx.log(LogLevel::kWarning, "event=bill_resend_forced",
              {{"chart_id", event->chart_id},
               {"channel", channel.name},
               {"reprocess_job", rerun.value("job", Json(nullptr))}});
    }
  }

  ctx.log(LogLevel::kInfo, "event=bill_closed",
          {{"chart_id", event->chart_id},
           {"invoice_id", invoice_id},
           {"created", created},
           {"channels", channels}});
  return Completed{Json{{"released", true},
                        {"invoice_id", invoice_id},
                        {"total", static_cast<double>(total) / 100.0},
                        {"currency", currency},
                        {"final_notifications", final_queued},
                        {"bill_channels", channels},
                        // What send_bill fans out over: also a bill an earlier run queued and
                        // did not deliver (its step skipped or failed by an operator).
                        {"delivery_channels", bill_delivery_channels(sql, event->chart_id)}}};
}

std::optional<Json> DischargeHandler::preview_rerun(Sql& sql, const RerunPreview& p) const {
  auto event = parse_chart_event(*p.event);
  if (!event) return std::nullopt;
  auto chart =
      ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash);
  if (!chart) return std::nullopt;
  Json effects = Json::array();
  auto add = [&](const char* effect, const std::string& action, std::int64_t n) {
    if (n > 0) effects.push_back({{"effect", effect}, {"action", action}, {"count", n}});
  };
  if (!is_released(chart->index)) {
    // Released by its signal, or not at all: the re-run waits for the signal again, or closes
    // nothing.
    std::string release_signal;
    try {
      Json merged = p.config && p.config->is_object() ? *p.config : Json::object();
      if (p.input && p.input->is_object())
        for (const auto& [key, value] : p.input->items())
          if (!value.is_null()) merged[key] = value;
      release_signal = release_signal_of(merged);
    } catch (const std::invalid_argument&) {
    }
    add("release_signal", "wait", release_signal.empty() ? 0 : 1);
    return effects;
  }
  const bool resend = p.flags.value("resend", false);
  const bool force = p.flags.value("force", false) && !p.flags.value("reason", "").empty();
  const auto payors =
      static_cast<std::int64_t>(payors_of(load_ledger(sql, event->chart_id), chart->index).size());
  const bool invoiced = util::query_one(sql, kFindInvoice, {event->chart_id}).has_value();
  add("invoice", invoiced ? "reuse" : "create", 1);
  add("insurer_final_notification", !invoiced || resend ? "send" : "not_resent", payors);
  std::map<std::string, std::int64_t> bills;
  for (const auto& channel : settings_->bill_delivery.channels) {
    const auto row = util::query_one(sql, kBillState, {event->chart_id, channel.name});
    if (!row)
      ++bills["send"];
    else if (util::column_text(*row, "status").value_or("") == "pending")
      ++bills["pending"];
    else if (force && util::column_bool(*row, "has_body"))
      ++bills["resend"];
    else
      ++bills["not_resent"];
  }
  for (const auto& [action, n] : bills) add("bill", action, n);
  return effects;
}

}  // namespace chartflow::handlers::discharge
