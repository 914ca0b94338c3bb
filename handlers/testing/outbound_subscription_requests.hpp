// What the outbound-subscription tests share: the delivery workflow with the waits a test
// picks, and a client's backport Subscription request.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "handlers/fhir_subscriptions/outbound_topics.hpp"

namespace chartflow::handlers::testing {

// workflows/fhir-subscription-delivery.yaml with the deliverer's `input` (its waits) and the
// step's own keys (`timeout`, `retry`) a test sets; each key of `step_keys` on a line of its own.
inline std::string delivery_workflow(const std::string& input,
                                     const std::string& step_keys = "timeout: 1m") {
  std::string keys;
  for (std::size_t at = 0; at < step_keys.size();) {
    const auto end = std::min(step_keys.find('\n', at), step_keys.size());
    keys += "    " + step_keys.substr(at, end - at) + "\n";
    at = end + 1;
  }
  return "name: fhir-subscription-delivery\n"
         "on:\n"
         "  - event: fhir.subscription.requested\n"
         "steps:\n"
         "  deliver:\n"
         "    handler: fhir_deliver\n"
         "    input: { " +
         input + " }\n" + keys;
}

// Short waits, so retries and the error state come in seconds.
inline std::string fast_delivery_workflow() {
  return delivery_workflow(
      "poll: 200ms, retry_initial: 200ms, retry_max: 1s, error_after: 3, timeout: 5s");
}

// `POST /fhir/Subscription`'s body: a rest-hook channel under the backport profile, e.g.
// SubscriptionRequest("review-requested", url).header("Authorization: Bearer x").json().
class SubscriptionRequest {
 public:
  SubscriptionRequest(std::string topic, std::string endpoint)
      : topic_(std::move(topic)), endpoint_(std::move(endpoint)) {}
  // One channel.header line.
  SubscriptionRequest& header(std::string line) {
    header_ = std::move(line);
    return *this;
  }
  // backport-payload-content: id-only, full-resource or empty.
  SubscriptionRequest& content(std::string code) {
    content_ = std::move(code);
    return *this;
  }
  // backport-filter-criteria Task?patient=<reference>.
  SubscriptionRequest& patient(std::string reference) {
    patient_ = std::move(reference);
    return *this;
  }
  // backport-heartbeat-period.
  SubscriptionRequest& heartbeat(int seconds) {
    heartbeat_seconds_ = seconds;
    return *this;
  }

  nlohmann::json json() const {
    using Json = nlohmann::json;
    const std::string backport =
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
    Json channel = {
        {"type", "rest-hook"}, {"endpoint", endpoint_}, {"payload", "application/fhir+json"}};
    if (!header_.empty()) channel["header"] = Json::array({header_});
    if (!content_.empty())
      channel["_payload"] = {
          {"extension", Json::array({{{"url", backport + "backport-payload-content"},
                                      {"valueCode", content_}}})}};
    if (heartbeat_seconds_ > 0)
      channel["extension"] = Json::array({{{"url", backport + "backport-heartbeat-period"},
                                           {"valueUnsignedInt", heartbeat_seconds_}}});
    Json s = {{"resourceType", "Subscription"},
              {"status", "requested"},
              {"reason", "test"},
              {"criteria", fhir_subscriptions::topic_url(topic_)},
              {"channel", channel}};
    if (!patient_.empty())
      s["_criteria"] = {
          {"extension", Json::array({{{"url", backport + "backport-filter-criteria"},
                                      {"valueString", "Task?patient=" + patient_}}})}};
    return s;
  }

 private:
  std::string topic_;  // a topic's code, e.g. review-requested
  std::string endpoint_;
  std::string header_, content_, patient_;
  int heartbeat_seconds_ = 0;
};

}  // namespace chartflow::handlers::testing
