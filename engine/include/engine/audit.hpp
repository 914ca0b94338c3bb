// One record of the audit trail: who did what to which resource, from where, with what
// outcome. Records carry ids, never chart content. A module writes them through
// EngineServices (engine/module.hpp), in the transaction of the action they describe.
#pragma once

#include <optional>
#include <string>

#include "engine/handler.hpp"

namespace chartflow {

struct AuditEntry {
  std::string actor;  // credential subject ("token:7", "user:alice"), "cli:<os user>", "anonymous"
  std::optional<std::string> actor_name;
  std::optional<std::string> role;
  std::string action;  // "chart.read", "chart.upload", "review.decide", "run.cancel", ...
  std::optional<std::string> resource_type;
  std::optional<std::string> resource_id;
  std::optional<std::string> remote;
  std::string outcome = "success";  // success | failure | denied
  Json detail = Json::object();     // ids, counts and reasons only
};

}  // namespace chartflow
