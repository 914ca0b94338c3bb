#include "handlers/chart_module.hpp"

#include <iostream>
#include <memory>

#include "handlers/billing/billing.hpp"
#include "handlers/chart_api/chart_api.hpp"
#include "handlers/chart_api/chart_routes.hpp"
#include "handlers/chart_intake/chart_upload.hpp"
#include "handlers/chart_migrations.hpp"
#include "handlers/discharge/bill_send.hpp"
#include "handlers/discharge/discharge.hpp"
#include "handlers/doctor_review/doctor_review.hpp"
#include "handlers/fhir_subscriptions/fhir_chart.hpp"
#include "handlers/fhir_subscriptions/fhir_fetch.hpp"
#include "handlers/fhir_subscriptions/gap_recovery.hpp"
#include "handlers/fhir_subscriptions/outbound_delivery.hpp"
#include "handlers/fhir_subscriptions/outbound_routes.hpp"
#include "handlers/fhir_subscriptions/run_failed_publisher.hpp"
#include "handlers/fhir_subscriptions/subscription_routes.hpp"
#include "handlers/insurance/insurance.hpp"
#include "handlers/missing_field_scan/missing_field_scan.hpp"

namespace chartflow::handlers {

namespace {

std::shared_ptr<const ChartSettings> load_settings(const std::filesystem::path& workflows_dir,
                                                   const ChartHandlerOptions& options) {
  auto settings =
      std::make_shared<const ChartSettings>(load_chart_settings(workflows_dir, options));
  for (const auto& warning : settings->warnings) {
    if (options.warn) {
      options.warn(warning);
    } else {
      std::cerr << "chartflow: warning: " << warning << "\n";
    }
  }
  return settings;
}

std::shared_ptr<const fhir_subscriptions::SubscriptionSettings> subscriptions_of(
    const std::shared_ptr<const ChartSettings>& settings) {
  return {settings, &settings->fhir_subscriptions};
}

// `services`: the module's way to the running engine, for the steps that store events of their
// own; null where the handlers are registered without the module (they then retry).
void add_handlers(HandlerRegistry& registry, const std::filesystem::path& workflows_dir,
                  const std::shared_ptr<const ChartSettings>& settings,
                  const std::shared_ptr<ServicesSlot>& services) {
  auto scan = std::make_shared<missing_field_scan::MissingFieldScanHandler>(workflows_dir);
  std::error_code ec;
  if (std::filesystem::exists(workflows_dir / missing_field_scan::kDefaultRulesFile, ec)) {
    scan->rules(missing_field_scan::kDefaultRulesFile);  // fail at start-up, not on the first chart
  }
  registry.add("missing_field_scan", std::move(scan));
  registry.add("doctor_review", std::make_shared<doctor_review::DoctorReviewHandler>());
  // Each handler holds the part of the settings it uses (sharing the one loaded copy).
  registry.add("billing",
               std::make_shared<billing::BillingHandler>(
                   std::shared_ptr<const billing::PriceList>(settings, &settings->price_list)));
  registry.add("insurance", std::make_shared<insurance::InsuranceHandler>(
                                std::shared_ptr<const insurance::InsurerSettings>(
                                    settings, &settings->insurers)));
  auto bill = std::make_shared<const discharge::DischargeSettings>(discharge::DischargeSettings{
      settings->price_list.currency, settings->insurers, settings->bill_delivery});
  registry.add("discharge", std::make_shared<discharge::DischargeHandler>(bill));
  registry.add("bill_send", std::make_shared<discharge::BillSendHandler>(bill));
  registry.add("fhir_fetch",
               std::make_shared<fhir_subscriptions::FhirFetchHandler>(subscriptions_of(settings)));
  registry.add("fhir_chart", std::make_shared<fhir_subscriptions::FhirChartHandler>(services));
  registry.add("fhir_recover_gaps", std::make_shared<fhir_subscriptions::GapRecoveryHandler>(
                                        subscriptions_of(settings), services));
  registry.add("fhir_deliver", std::make_shared<fhir_subscriptions::OutboundDeliveryHandler>(
                                   settings->secrets, services));
  registry.add("fhir_publish_run_failed",
               std::make_shared<fhir_subscriptions::RunFailedPublisher>());
  registry.add("chart_revision_expiry", std::make_shared<chart_retention::RevisionExpiryHandler>(
                                            settings->revision_retention, services));
}

}  // namespace

void register_chart_handlers(HandlerRegistry& registry, const std::filesystem::path& workflows_dir,
                             const ChartHandlerOptions& options) {
  add_handlers(registry, workflows_dir, load_settings(workflows_dir, options), nullptr);
}

void register_chart_module(ModuleRegistry& module, const std::filesystem::path& workflows_dir,
                           const ChartHandlerOptions& options) {
  auto settings = load_settings(workflows_dir, options);
  add_handlers(module.handlers(), workflows_dir, settings, module.services());
  add_chart_routes(module);
  fhir_subscriptions::add_subscription_routes(module, subscriptions_of(settings));
  fhir_subscriptions::add_outbound_routes(module, settings->secrets);
  // What an intake stored of a chart (an S3 object) is read as the chart is: by admin, or a
  // reviewer the chart is assigned to.
  module.add_intake(kChartIntake, chart_intake,
                    [](Sql& sql, const std::string& chart_id, const http::Principal& who) {
                      if (who.role == http::Role::kAdmin) return true;
                      return who.role == http::Role::kReviewer && who.assignee &&
                             chart_assigned_to(sql, chart_id, *who.assignee);
                    });
  // Only the intake makes chart.uploaded: the handlers and the workflow's conditions trust it.
  module.reserve_event_type(kChartUploadedEvent);
  // Only an authenticated subscription's notification makes fhir.notification.
  module.reserve_event_type(fhir_subscriptions::kNotificationEvent);
  // Only POST /fhir/Subscription starts a deliverer, for the subscription it stored.
  module.reserve_event_type(fhir_subscriptions::kSubscriptionRequestedEvent);
  module.reserve_event_type(fhir_subscriptions::kGapEvent);
  module.add_migrations(chart_migrations());
}

}  // namespace chartflow::handlers
