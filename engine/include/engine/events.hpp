// Events: what starts runs. An event is stored once (a repeated dedup_key is a duplicate and
// starts nothing) together with the runs whose triggers it matches, in one transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow {

struct EventInput {
  std::string type;
  std::optional<std::string> dedup_key;
  Json body = Json::object();
  std::string source = "api";
  std::optional<std::string> subject;  // e.g. the chart id, for finding runs by patient
  // The W3C trace the event belongs to (core/trace.hpp: parse_traceparent gives both from a
  // caller's `traceparent`): 32 hex digits, and the caller's span, 16. Unset: a new trace.
  std::optional<std::string> trace_id;
  std::optional<std::string> trace_parent;
};

struct IngestResult {
  std::int64_t event_id = 0;
  std::vector<std::int64_t> run_ids;
  bool duplicate = false;
  // Workflows whose trigger debounces this event: each starts one run later, with the last
  // event of the same key value (workflow files: `debounce`).
  std::vector<std::string> debounced;
};

}  // namespace chartflow
