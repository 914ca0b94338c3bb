// Handler `insurance`: informs the chart's insurers. Billing and discharge put notifications in
// insurer_outbox in their own transactions; this step POSTs every pending one of the chart (with
// input `kind`: only those of that kind, "claim" or "final") to the payor's endpoint
// (workflows/settings/insurers.yaml) with an Idempotency-Key header, each attempt recorded through
// the step journal before and after the call (handlers/insurance/outbox.hpp), and marks it
// delivered. A failed delivery returns Retry after the wait the failed payor's retry policy
// gives (insurers.yaml `retry`: capped exponential backoff with jitter); the engine counts the
// attempts against the step's max_attempts, and the insurer de-duplicates by key. A payor
// without endpoint is recorded as skipped.
// Output: {"payor" (primary insurer found on the chart, or null), "payors", "delivered",
// "skipped", "in_flight"}. Stateless apart from immutable settings; safe to share between workers.
#pragma once

#include <memory>
#include <string>

#include "engine/handler.hpp"
#include "handlers/insurance/insurer_settings.hpp"

namespace chartflow::handlers::insurance {

class InsuranceHandler : public Handler {
 public:
  explicit InsuranceHandler(std::shared_ptr<const InsurerSettings> insurers);
  StepOutcome run(StepContext& ctx) override;
  void validate(const Json& config) const override;
  // A hanging insurer holds only the network workers, never those scanning new charts.
  std::string bulkhead() const override { return kNetworkBulkhead; }

 private:
  std::shared_ptr<const InsurerSettings> insurers_;
};

}  // namespace chartflow::handlers::insurance
