// Handler `discharge`: closes the bill of a released patient, once per chart. A chart is
// released when an Encounter finished with a discharge disposition, when the event body says
// "released": true, or (setting release_signal) when that signal arrives.
// For a released chart, in the step's own transaction and nothing else: an invoice row (total =
// sum of the chart's ledger, a FHIR Invoice and the readable bill text, its Issued: time fixed
// then), a pending 'final' insurer notification per payor, and a pending bill_delivery per
// configured channel (folder / webhook) holding the exact bytes to send and their key. No
// outside call: later steps send them (insurance with kind final; bill_send), re-sending the
// stored bytes, so a failing receiver or a crash never makes a second, different bill.
// Not released: {"released": false}, nothing written.
// Output: {"released", "invoice_id", "total", "currency", "final_notifications" (queued now),
// "bill_channels" (queued now)}.
// Stateless apart from immutable settings; safe to share between workers.
#pragma once

#include <memory>
#include <string>

#include "engine/handler.hpp"
#include "handlers/discharge/bill_channels.hpp"
#include "handlers/insurance/insurer_settings.hpp"

namespace chartflow::handlers::discharge {

// What closing and sending a bill needs: the currency of a bill without ledger lines, the
// insurers (their timeout also bounds a bill webhook's call), the channels the bill goes out
// through.
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
  // The invoice ("create" or "reuse"), the final insurer notifications ("send", or "not_resent"
  // unless resend) and the bill per channel ("send", "pending": queued and not yet out,
  // "not_resent": went out, and goes again only with force and a reason: "resend").
  std::optional<Json> preview_rerun(Sql& sql, const RerunPreview& p) const override;

 private:
  std::shared_ptr<const DischargeSettings> settings_;
};

}  // namespace chartflow::handlers::discharge
