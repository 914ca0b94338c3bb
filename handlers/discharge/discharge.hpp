// Handler `discharge`: closes the bill of a released patient, once per chart. A chart is
// released when an Encounter finished with a discharge disposition, when the event body says
// "released": true, or (setting release_signal) when that signal arrives.
// For a released chart: an invoice row (total = sum of the chart's ledger, a FHIR Invoice and
// the readable bill text), a 'final' insurer notification per payor (delivered here, Retry on
// failure), and the bill sent through each configured channel (folder / webhook), each recorded
// in bill_delivery so it goes out once. Not released: {"released": false}, nothing written.
// Output: {"released", "invoice_id", "total", "currency", "final_notifications", "bill_channels"}.
// Stateless apart from immutable settings; safe to share between workers.
#pragma once

#include <memory>
#include <string>

#include "engine/handler.hpp"
#include "handlers/discharge/bill_channels.hpp"
#include "handlers/insurance/insurer_settings.hpp"

namespace chartflow::handlers::discharge {

// What closing a bill needs: the currency of a bill without ledger lines, the insurers to send
// the final notification to, the channels the bill goes out through.
struct DischargeSettings {
  std::string currency;
  insurance::InsurerSettings insurers;
  BillDeliverySettings bill_delivery;
};

class DischargeHandler : public Handler {
 public:
  explicit DischargeHandler(std::shared_ptr<const DischargeSettings> settings);
  StepOutcome run(StepContext& ctx) override;
  void validate(const Json& config) const override;
  // It calls insurers and bill receivers: see InsuranceHandler::bulkhead.
  std::string bulkhead() const override { return kNetworkBulkhead; }

 private:
  std::shared_ptr<const DischargeSettings> settings_;
};

}  // namespace chartflow::handlers::discharge
