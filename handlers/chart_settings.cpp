#include "handlers/chart_settings.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "handlers/common/config_file.hpp"

namespace chartflow::handlers {
namespace {

Json settings_json(const std::filesystem::path& workflows_dir, const char* file,
                   const std::optional<Json>& override_value) {
  if (override_value) return *override_value;
  std::error_code ec;
  std::filesystem::path path = workflows_dir / file;
  if (!std::filesystem::exists(path, ec)) return nullptr;
  return load_config_file(path);
}

template <typename T>
T parse(const std::filesystem::path& workflows_dir, const char* file,
        const std::optional<Json>& override_value) {
  Json json = settings_json(workflows_dir, file, override_value);
  try {
    return T::from_json(json);
  } catch (const std::invalid_argument& e) {
    // file:line: as workflow files report, so an operator goes straight to the bad value.
    const std::filesystem::path path = workflows_dir / file;
    const int line = override_value ? 0 : settings_error_line(path, e.what());
    if (line > 0)
      throw std::invalid_argument(fmt::format("{}:{}: {}", path.string(), line, e.what()));
    throw std::invalid_argument(fmt::format("{}: {}", path.string(), e.what()));
  }
}

}  // namespace

ChartSettings load_chart_settings(const std::filesystem::path& workflows_dir,
                                  const ChartHandlerOptions& options) {
  ChartSettings settings;
  settings.workflows_dir = workflows_dir;
  settings.price_list =
      parse<billing::PriceList>(workflows_dir, kPriceListFile, options.price_list);
  settings.insurers =
      parse<insurance::InsurerSettings>(workflows_dir, kInsurersFile, options.insurers);
  settings.bill_delivery = parse<discharge::BillDeliverySettings>(workflows_dir, kBillDeliveryFile,
                                                                  options.bill_delivery);
  settings.fhir_subscriptions = parse<fhir_subscriptions::SubscriptionSettings>(
      workflows_dir, kFhirSubscriptionsFile, options.fhir_subscriptions);
  settings.revision_retention = parse<chart_retention::RevisionRetention>(
      workflows_dir, kChartRetentionFile, options.chart_retention);
  settings.secrets = options.secrets ? options.secrets : fhir_subscriptions::ephemeral_secrets();
  // A relative folder is the workflows folder's neighbour, not the working directory's: the
  // shipped default ../chartflow-data/bills is the default data dir's bills/ (docs/handlers.md).
  for (auto& channel : settings.bill_delivery.channels)
    if (channel.type == "folder" && std::filesystem::path(channel.dir).is_relative())
      channel.dir = (workflows_dir / channel.dir).lexically_normal().string();
  for (const auto& w : settings.insurers.warnings) {
    settings.warnings.push_back(fmt::format("{}: {}", (workflows_dir / kInsurersFile).string(), w));
  }
  for (const auto& w : settings.bill_delivery.warnings) {
    settings.warnings.push_back(
        fmt::format("{}: {}", (workflows_dir / kBillDeliveryFile).string(), w));
  }
  for (const auto& w : settings.fhir_subscriptions.warnings) {
    settings.warnings.push_back(
        fmt::format("{}: {}", (workflows_dir / kFhirSubscriptionsFile).string(), w));
  }
  return settings;
}

}  // namespace chartflow::handlers
