// Handler `fhir_publish_run_failed`: publishes the run-failed SubscriptionTopic for a
// `workflow.failed` event (workflow fhir-run-failed), in this step's transaction, so the event
// exists exactly once however often the step is retried. The event names the run, its workflow
// and its subject (the chart id, read only to find the patient the subscribers filter by); what
// is published carries ids only (outbound_topics.hpp, publish_run_failed).
#pragma once

#include "engine/handler.hpp"

namespace chartflow::handlers::fhir_subscriptions {

class RunFailedPublisher : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override;
};

}  // namespace chartflow::handlers::fhir_subscriptions
