// Handler `insurance`: informs the chart's insurers. Billing put one notification per payor in
// insurer_outbox in its own transaction; this step POSTs every pending one of the chart to the
// payor's endpoint (workflows/settings/insurers.yaml) with an Idempotency-Key header and marks
// it delivered. A failed delivery returns Retry (the engine backs off and runs the step again;
// the insurer de-duplicates by key). A payor without endpoint is recorded as skipped.
// Output: {"payor" (primary insurer found on the chart, or null), "payors", "delivered",
// "skipped"}. Stateless apart from immutable settings; safe to share between workers.
#pragma once

#include <memory>

#include "engine/handler.hpp"
#include "handlers/insurance/insurer_settings.hpp"

namespace chartflow::handlers::insurance {

class InsuranceHandler : public Handler {
 public:
  explicit InsuranceHandler(std::shared_ptr<const InsurerSettings> insurers);
  StepOutcome run(StepContext& ctx) override;

 private:
  std::shared_ptr<const InsurerSettings> insurers_;
};

}  // namespace chartflow::handlers::insurance
