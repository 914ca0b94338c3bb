#include "handlers/discharge/bill_send.hpp"

#include <fmt/format.h>

#include "handlers/common/chart_event.hpp"
#include "handlers/discharge/bill_outbox.hpp"

namespace chartflow::handlers::discharge {

BillSendHandler::BillSendHandler(std::shared_ptr<const DischargeSettings> settings)
    : settings_(std::move(settings)) {}

StepOutcome BillSendHandler::run(StepContext& ctx) {
  auto event = parse_chart_event(ctx.event());
  if (!event) return Fail{"event body lacks a valid chart_id and revision", true};
  // As an element of a for_each over the discharge's pending channels, `item` names the one
  // channel this step sends; without it (a run of an older workflow version) every one.
  std::string channel;
  if (const auto item = ctx.input().find("item"); item != ctx.input().end()) {
    if (!item->is_string() || item->get_ref<const std::string&>().empty())
      return Fail{"bill_send: input.item must be a bill channel's name", true};
    channel = item->get<std::string>();
  }
  const BillSendReport report = send_pending_bills(
      ctx, settings_->bill_delivery, settings_->insurers.timeout, event->chart_id, channel);
  if (!report.failed.empty()) {
    return Retry{fmt::format("bill delivery failed for chart {} via {}", event->chart_id,
                             report.first_error),
                 std::nullopt};
  }
  if (!report.in_flight.empty()) {
    // Another step holds them (a second run of this chart): it may yet fail or be skipped by an
    // operator, so this step stays until nothing of the bill is pending.
    return Retry{fmt::format("the bill of chart {} is being sent by another step", event->chart_id),
                 std::nullopt};
  }
  return Completed{report.to_json()};
}

}  // namespace chartflow::handlers::discharge
