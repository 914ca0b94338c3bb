// Per-payor insurer endpoints (workflows/settings/insurers.yaml), loaded and validated once at
// start-up; immutable afterwards and shared by the insurance and discharge handlers.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "engine/util/http_post.hpp"

namespace chartflow::handlers::insurance {

inline constexpr std::chrono::milliseconds kDefaultInsurerTimeout{10'000};

struct InsurerEndpoint {
  std::string url;  // "" = no endpoint
  bool skip = false;
  util::HttpPostOptions http;  // timeout, TLS (ca_file, client certificate), auth
};

struct InsurerSettings {
  std::map<std::string, InsurerEndpoint> payors;  // includes "default" when configured
  std::chrono::milliseconds timeout = kDefaultInsurerTimeout;
  std::vector<std::string> warnings;  // for the start-up log (allow_insecure in use)

  // The endpoint for `payor`: its own entry (exact, then case-insensitive), else "default".
  // nullopt (or skip / empty url) means the notification is recorded as skipped.
  std::optional<InsurerEndpoint> endpoint_for(const std::string& payor) const;
  // Expands ${VAR} in urls; https:// (plain http:// only to a loopback host or with
  // allow_insecure: true); reads tls and auth (handlers/common/outbound_settings.hpp). Throws
  // std::invalid_argument naming the key ("payors.default.url: ...") on bad values.
  static InsurerSettings from_json(const Json& settings);
};

}  // namespace chartflow::handlers::insurance
