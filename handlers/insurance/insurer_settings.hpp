// Per-payor insurer endpoints (workflows/settings/insurers.yaml), loaded and validated once at
// start-up; immutable afterwards and shared by the insurance and discharge handlers.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::handlers::insurance {

inline constexpr std::chrono::milliseconds kDefaultInsurerTimeout{10'000};

struct InsurerEndpoint {
  std::string url;  // "" = no endpoint
  bool skip = false;
};

struct InsurerSettings {
  std::map<std::string, InsurerEndpoint> payors;  // includes "default" when configured
  std::chrono::milliseconds timeout = kDefaultInsurerTimeout;

  // The endpoint for `payor`: its own entry (exact, then case-insensitive), else "default".
  // nullopt (or skip / empty url) means the notification is recorded as skipped.
  std::optional<InsurerEndpoint> endpoint_for(const std::string& payor) const;
  // Expands ${VAR} in urls; throws std::invalid_argument naming the payor on bad values.
  static InsurerSettings from_json(const Json& settings);
};

}  // namespace chartflow::handlers::insurance
