// The FHIR subscriptions chartflow receives (workflows/settings/fhir-subscriptions.yaml),
// loaded and validated once at start-up; immutable afterwards and shared by the notification
// route and the fhir_fetch handler. Each names the route's {name}, how the sender proves itself
// (a secret from a file or the environment, sent as a bearer token or in a header of its own)
// and, for fetching resources and missed events, the FHIR server's base URL with the outbound
// settings of handlers/common/outbound_settings.hpp (TLS, auth).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "engine/util/access_token.hpp"
#include "engine/util/http_post.hpp"

namespace chartflow::handlers::fhir_subscriptions {

inline constexpr std::chrono::milliseconds kDefaultFhirTimeout{10'000};

struct Subscription {
  std::string name;  // POST /fhir/subscriptions/{name}
  // The header the sender's secret comes in (lower case): "authorization" means
  // "Authorization: Bearer <secret>", any other header carries the bare secret.
  std::string header = "authorization";
  std::shared_ptr<util::AccessTokenSource> secret;  // re-read per request from a file
  std::string fhir_base_url;       // "" = nothing is fetched (no id-only fetches, no $events)
  bool events_operation = false;   // the server offers Subscription/{id}/$events
  bool patient_everything = true;  // a Patient focus is fetched as Patient/{id}/$everything
  util::HttpPostOptions http;      // timeout, TLS and credentials for fhir_base_url
};

struct SubscriptionSettings {
  std::vector<Subscription> subscriptions;
  std::vector<std::string> warnings;

  const Subscription* find(const std::string& name) const;
  // `subscriptions: [{name, secret_file | secret_env, header, fhir_base_url, events_operation,
  // patient_everything, allow_insecure, tls, auth}]` and `timeout`. Throws std::invalid_argument
  // starting with the key ("subscriptions.ehr.secret_file: ...").
  static SubscriptionSettings from_json(const Json& settings);
};

}  // namespace chartflow::handlers::fhir_subscriptions
