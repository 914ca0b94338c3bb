#include "handlers/insurance/insurance.hpp"

#include <fmt/format.h>

#include "handlers/common/chart_cache.hpp"
#include "handlers/common/chart_event.hpp"
#include "handlers/insurance/insurer_lookup.hpp"
#include "handlers/insurance/outbox.hpp"

namespace chartflow::handlers::insurance {

InsuranceHandler::InsuranceHandler(std::shared_ptr<const InsurerSettings> insurers)
    : insurers_(std::move(insurers)) {}

StepOutcome InsuranceHandler::run(StepContext& ctx) {
  auto event = parse_chart_event(ctx.event());
  if (!event) return Fail{"event body lacks a valid chart_id and revision", true};
  Sql& sql = ctx.sql();
  Json payor = nullptr;
  Json payors = Json::array();
  if (auto chart =
          ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash)) {
    for (const auto& p : find_insurers(chart->index)) payors.push_back(p.payor);
    if (!payors.empty()) payor = payors.front();
  }
  DeliveryReport report = deliver_pending(ctx, *insurers_, event->chart_id);
  if (report.failed > 0) {
    std::string ids;
    for (auto id : report.failed_ids) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    return Retry{fmt::format("insurer delivery failed for outbox {}: {}", ids, report.first_error),
                 std::nullopt};
  }
  return Completed{Json{{"payor", payor},
                        {"payors", payors},
                        {"delivered", report.delivered},
                        {"skipped", report.skipped}}};
}

}  // namespace chartflow::handlers::insurance
