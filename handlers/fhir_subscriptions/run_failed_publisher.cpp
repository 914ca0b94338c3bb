#include "handlers/fhir_subscriptions/run_failed_publisher.hpp"

#include "handlers/fhir_subscriptions/outbound_topics.hpp"

namespace chartflow::handlers::fhir_subscriptions {

StepOutcome RunFailedPublisher::run(StepContext& ctx) {
  const Json& e = ctx.event();
  if (!e.is_object() || !e.contains("run_id") || !e.at("run_id").is_number_integer())
    return Fail{"event body lacks run_id", true};
  const std::string workflow = e.value("workflow", "");
  // Its own failure is not published: a failing publisher would otherwise chain on itself.
  if (workflow == ctx.workflow()) return Completed{{{"published", 0}, {"skipped", true}}};
  const std::string subject = e.contains("subject") && e.at("subject").is_string()
                                  ? e.at("subject").get<std::string>()
                                  : "";
  const int n =
      publish_run_failed(ctx.sql(), e.at("run_id").get<std::int64_t>(), workflow, subject);
  return Completed{{{"published", n}}};
}

}  // namespace chartflow::handlers::fhir_subscriptions
