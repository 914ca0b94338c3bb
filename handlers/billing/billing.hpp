// Handler `billing`: one ledger entry per completed MedicationAdministration and per billable
// Claim item of the uploaded chart (see billable_items.hpp), written through the step's
// transaction. UNIQUE (chart_id, source_ref) makes re-uploads, retries and re-runs add nothing
// twice. In the same transaction it puts one insurer notification per payor of the entries it
// added into insurer_outbox (the insurance step delivers them).
// Output: {"entries_added", "entries_total", "amount_added", "currency", "notifications"}.
// Stateless apart from immutable settings; safe to share between workers.
#pragma once

#include <memory>

#include "engine/handler.hpp"
#include "handlers/billing/billable_items.hpp"

namespace chartflow::handlers::billing {

class BillingHandler : public Handler {
 public:
  explicit BillingHandler(std::shared_ptr<const PriceList> prices);
  StepOutcome run(StepContext& ctx) override;
  // Ledger entries: "add" (new) or "skip" (already present); insurer notifications: "send"
  // (one per payor, for new entries, and with resend for those billed before) or "not_resent".
  std::optional<Json> preview_rerun(Sql& sql, const RerunPreview& p) const override;

 private:
  std::shared_ptr<const PriceList> prices_;
};

}  // namespace chartflow::handlers::billing
