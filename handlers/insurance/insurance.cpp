#include "handlers/insurance/insurance.hpp"

#include <fmt/format.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/util/sql_rows.hpp"
#include "handlers/common/chart_cache.hpp"
#include "handlers/common/chart_event.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/fhir/fhir_json.hpp"
#include "handlers/insurance/insurer_lookup.hpp"
#include "handlers/insurance/outbox.hpp"

namespace chartflow::handlers::insurance {
namespace {

// "" = every kind.
std::string kind_of(const Json& settings) {
  std::string kind = string_setting(fhir::member(settings, "kind"), "kind", "");
  if (!kind.empty() && kind != "claim" && kind != "final")
    throw std::invalid_argument(R"(kind must be "claim" or "final")");
  return kind;
}

double unit_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// The payors of the notifications that failed: their policies decide the wait.
std::vector<std::string> payors_of(Sql& sql, const std::vector<std::int64_t>& outbox_ids) {
  std::string ids = "{";
  for (auto id : outbox_ids) ids += (ids.size() > 1 ? "," : "") + std::to_string(id);
  std::vector<std::string> out;
  for (const auto& row : util::query_rows(
           sql, "SELECT DISTINCT payor FROM insurer_outbox WHERE id = ANY ($1::bigint[])",
           {ids + "}"}))
    if (auto payor = util::column_text(row, "payor")) out.push_back(*payor);
  return out;
}

}  // namespace

InsuranceHandler::InsuranceHandler(std::shared_ptr<const InsurerSettings> insurers)
    : insurers_(std::move(insurers)) {}

void InsuranceHandler::validate(const Json& config) const { kind_of(config); }

StepOutcome InsuranceHandler::run(StepContext& ctx) {
  auto event = parse_chart_event(ctx.event());
  if (!event) return Fail{"event body lacks a valid chart_id and revision", true};
  std::string kind;
  try {
    kind = kind_of(merged_settings(ctx));
  } catch (const std::invalid_argument& e) {
    return Fail{e.what(), true};
  }
  Sql& sql = ctx.sql();
  Json payor = nullptr;
  Json payors = Json::array();
  if (auto chart =
          ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash)) {
    for (const auto& p : find_insurers(chart->index)) payors.push_back(p.payor);
    if (!payors.empty()) payor = payors.front();
  }
  DeliveryReport report =
      deliver_pending(ctx, *insurers_, event->chart_id,
                      kind.empty() ? std::nullopt : std::optional<std::string>(kind));
  if (report.failed > 0) {
    std::string ids;
    for (auto id : report.failed_ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    // The payor's policy (insurers.yaml), not the step's, spaces the attempts: an insurer's
    // outage is ridden out as that insurer's contract or habits suggest. The step's
    // max_attempts still counts them, and on_exhausted: park catches the last.
    const auto wait =
        insurers_->retry_delay(payors_of(sql, report.failed_ids), ctx.attempt(), unit_random());
    return Retry{fmt::format("insurer delivery failed for outbox {}: {}", ids, report.first_error),
                 wait};
  }
  if (report.in_flight > 0) {
    // Another step holds them (a second run of this chart): it may yet fail or be skipped by an
    // operator, so this step stays until nothing of the chart is pending.
    return Retry{
        fmt::format("{} insurer notification(s) of chart {} are being sent by another step",
                    report.in_flight, event->chart_id),
        std::nullopt};
  }
  return Completed{Json{{"payor", payor},
                        {"payors", payors},
                        {"delivered", report.delivered},
                        {"skipped", report.skipped},
                        {"in_flight", report.in_flight}}};
}

}  // namespace chartflow::handlers::insurance
