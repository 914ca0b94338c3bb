// Per-payor insurer endpoints (workflows/settings/insurers.yaml), loaded and validated once at
// start-up; immutable afterwards and shared by the insurance and discharge handlers.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "engine/util/backoff.hpp"
#include "engine/util/http_post.hpp"

namespace chartflow::handlers::insurance {

inline constexpr std::chrono::milliseconds kDefaultInsurerTimeout{10'000};
// How long the insurance step waits before it tries a payor again, unless insurers.yaml says
// otherwise: 500 ms doubling up to 10 min, +-20%. With the chart workflow's 40 attempts that is
// at least 3.9 hours of outage ridden out before the step parks for an operator.
inline constexpr util::Backoff kDefaultInsurerRetry{std::chrono::milliseconds(500),
                                                    std::chrono::minutes(10), 2.0, 0.2};

struct InsurerEndpoint {
  std::string url;  // "" = no endpoint
  bool skip = false;
  util::HttpPostOptions http;                  // timeout, TLS (ca_file, client certificate), auth
  util::Backoff retry = kDefaultInsurerRetry;  // the file's `retry`, overlaid with the payor's
};

struct InsurerSettings {
  std::map<std::string, InsurerEndpoint> payors;  // includes "default" when configured
  std::chrono::milliseconds timeout = kDefaultInsurerTimeout;
  util::Backoff retry = kDefaultInsurerRetry;  // the file's `retry`: for payors without an entry
  std::vector<std::string> warnings;           // for the start-up log (allow_insecure in use)

  // The endpoint for `payor`: its own entry (exact, then case-insensitive), else "default".
  // nullopt (or skip / empty url) means the notification is recorded as skipped.
  std::optional<InsurerEndpoint> endpoint_for(const std::string& payor) const;
  // The retry policy of `payor`, found as endpoint_for finds its endpoint.
  const util::Backoff& retry_for(const std::string& payor) const;
  // How long to wait after failed attempt number `attempt` to reach the `failed` payors: the
  // longest of their policies' waits (`unit_random` in [0, 1) draws the jitter), so the most
  // patient policy among the payors that failed holds.
  std::chrono::milliseconds retry_delay(const std::vector<std::string>& failed, int attempt,
                                        double unit_random) const;
  // Expands ${VAR} in urls; https:// (plain http:// only to a loopback host or with
  // allow_insecure: true); reads tls and auth (handlers/common/outbound_settings.hpp) and
  // `retry: {initial, max, multiplier, jitter}` at the top and per payor. Throws
  // std::invalid_argument starting with the key ("payors.default.url: ...") on bad values.
  static InsurerSettings from_json(const Json& settings);
};

}  // namespace chartflow::handlers::insurance
