// Handler `fhir_chart`: the chart an EHR's notification announced. For an id-only notification
// whose focus fhir_fetch read as a Bundle (a Patient's $everything), it hands that Bundle to the
// chart intake every other door uses: the same validation and limits, the chart id from its
// Patient, the revision and its chart.uploaded event in one transaction (so chart-update runs,
// and its subscribers hear of the review), audited as `chart.upload` by the subscription. The
// same content again is a duplicate and starts nothing, so a repeated step (its commit lost
// after the intake's) uploads nothing twice. A focus that is not a Bundle, or nothing fetched
// (404, 410), completes with `chart: false` and the reason; a Bundle that is no chart fails the
// run, naming why. Output: ids and counts only.
#pragma once

#include <memory>

#include "engine/handler.hpp"
#include "engine/module.hpp"

namespace chartflow::handlers::fhir_subscriptions {

class FhirChartHandler : public Handler {
 public:
  explicit FhirChartHandler(std::shared_ptr<ServicesSlot> services)
      : services_(std::move(services)) {}
  StepOutcome run(StepContext& ctx) override;
  // Not a network call, but never batched with chart steps: a scan earlier in the same batch
  // holds its chart's row until the batch commits, and this step's intake (on a connection of
  // its own) would wait for that lock until it timed out. The bulkhead's workers claim one step
  // at a time.
  std::string bulkhead() const override { return kNetworkBulkhead; }

 private:
  std::shared_ptr<ServicesSlot> services_;
};

}  // namespace chartflow::handlers::fhir_subscriptions
