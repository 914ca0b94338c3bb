#include "handlers/register_chart_handlers.hpp"

#include <memory>

#include "handlers/billing/billing.hpp"
#include "handlers/discharge/discharge.hpp"
#include "handlers/doctor_review/doctor_review.hpp"
#include "handlers/insurance/insurance.hpp"
#include "handlers/missing_field_scan/missing_field_scan.hpp"

namespace chartflow::handlers {

void register_chart_handlers(HandlerRegistry& registry, const std::filesystem::path& workflows_dir,
                             const ChartHandlerOptions& options) {
  auto settings =
      std::make_shared<const ChartSettings>(load_chart_settings(workflows_dir, options));
  auto scan = std::make_shared<MissingFieldScanHandler>(workflows_dir);
  std::error_code ec;
  if (std::filesystem::exists(workflows_dir / kDefaultRulesFile, ec)) {
    scan->rules(kDefaultRulesFile);  // fail at start-up, not on the first chart
  }
  registry.add("missing_field_scan", std::move(scan));
  registry.add("doctor_review", std::make_shared<DoctorReviewHandler>());
  registry.add("billing", std::make_shared<BillingHandler>(settings));
  registry.add("insurance", std::make_shared<InsuranceHandler>(settings));
  registry.add("discharge", std::make_shared<DischargeHandler>(settings));
}

}  // namespace chartflow::handlers
