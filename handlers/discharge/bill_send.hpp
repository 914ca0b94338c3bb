// Handler `bill_send`: sends a released patient's bill through every channel the discharge step
// queued it for (handlers/discharge/bill_outbox.hpp): the stored bytes under the stored key, each
// channel claimed, attempted and recorded on its own through the step journal, so a delivered
// channel is never sent again and one failing channel does not resend another. Any channel
// failed: Retry (the engine backs off; the next attempt sends only what is still pending).
// One step for all channels, not one per channel: which channels exist is bill-delivery.yaml's
// business (a channel whose url is unset is disabled at start-up), and a workflow listing them
// would leave the bill of a channel it does not list pending for ever.
// Output: {"delivered", "failed", "in_flight", "unconfigured"} (channel names).
// Stateless apart from immutable settings; safe to share between workers.
#pragma once

#include <memory>
#include <string>

#include "engine/handler.hpp"
#include "handlers/discharge/discharge.hpp"

namespace chartflow::handlers::discharge {

class BillSendHandler : public Handler {
 public:
  explicit BillSendHandler(std::shared_ptr<const DischargeSettings> settings);
  StepOutcome run(StepContext& ctx) override;
  // It waits on bill receivers: see InsuranceHandler::bulkhead.
  std::string bulkhead() const override { return kNetworkBulkhead; }

 private:
  std::shared_ptr<const DischargeSettings> settings_;
};

}  // namespace chartflow::handlers::discharge
