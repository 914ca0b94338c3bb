// Settings shared by the chart handlers, loaded and validated once at start-up (by
// register_chart_handlers) from <workflows_dir>/settings/*.yaml; immutable afterwards and shared
// read-only between threads.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/billing/billable_items.hpp"
#include "handlers/chart_retention/revision_retention.hpp"
#include "handlers/discharge/bill_channels.hpp"
#include "handlers/fhir_subscriptions/subscriber_headers.hpp"
#include "handlers/fhir_subscriptions/subscription_settings.hpp"
#include "handlers/insurance/insurer_settings.hpp"

namespace chartflow::handlers {

inline constexpr const char* kPriceListFile = "settings/price-list.yaml";
inline constexpr const char* kInsurersFile = "settings/insurers.yaml";
inline constexpr const char* kBillDeliveryFile = "settings/bill-delivery.yaml";
inline constexpr const char* kFhirSubscriptionsFile = "settings/fhir-subscriptions.yaml";
inline constexpr const char* kChartRetentionFile = "settings/chart-retention.yaml";

struct ChartSettings {
  std::filesystem::path workflows_dir;
  billing::PriceList price_list;
  insurance::InsurerSettings insurers;
  discharge::BillDeliverySettings bill_delivery;
  fhir_subscriptions::SubscriptionSettings fhir_subscriptions;  // inbound FHIR notifications
  chart_retention::RevisionRetention revision_retention;        // default: forever
  // Seals the credentials chartflow stores to send later (outbound subscribers' header lines).
  fhir_subscriptions::SecretsPtr secrets;
  // What start-up should log as warnings ("<file>: payors.x: allow_insecure: true ..."): the
  // settings files' own warnings.
  std::vector<std::string> warnings;
};

// Overrides for tests and embedders: a value given here replaces the settings file.
struct ChartHandlerOptions {
  std::optional<Json> price_list;
  std::optional<Json> insurers;
  std::optional<Json> bill_delivery;
  std::optional<Json> fhir_subscriptions;
  std::optional<Json> chart_retention;
  // The deployment's secrets key (serve and worker load --secrets-key-file); unset: a random key
  // that lives as long as the process (tests, benchmarks).
  fhir_subscriptions::SecretsPtr secrets;
  // Receives each settings warning at start-up (the app passes its log); unset: stderr.
  std::function<void(const std::string&)> warn;
};

// Loads the settings files (a missing file means built-in defaults: default prices, no insurer
// endpoints, no bill channels). Throws std::invalid_argument naming the file and the problem.
ChartSettings load_chart_settings(const std::filesystem::path& workflows_dir,
                                  const ChartHandlerOptions& options = {});

}  // namespace chartflow::handlers
