// The workflow definition model: what a file in workflows/ means once loaded and validated.
// Values, no I/O. A Workflow is immutable once built and shared read-only between threads.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/condition.hpp"
#include "core/retry_policy.hpp"
#include "engine/util/duration.hpp"

namespace chartflow::core {

inline constexpr Millis kDefaultStepTimeout{30'000};

// Events of a trigger whose value at `key` is the same coalesce into one run, with the last
// event's body: it starts once `window` passes without another, or `max_wait` after the first.
struct Debounce {
  std::string key;  // JSON pointer into {"event": ...}, starting /event/
  Millis window{0};
  Millis max_wait{0};  // >= window
};

struct Trigger {
  std::string event;                                // event type, e.g. "chart.uploaded"
  std::optional<Condition> filter;                  // evaluated against {"event": body}
  std::optional<Debounce> debounce;                 // event triggers only
  nlohmann::json extra = nlohmann::json::object();  // source-specific keys (schedule, ...)
};

struct Concurrency {
  int limit = 0;    // 0 = unlimited
  std::string key;  // JSON pointer into {"event": ...}; empty = one limit for the step
};

struct HandlerSpec {
  std::string name;                                  // built-in name, or "exec"/"python3"
  nlohmann::json config = nlohmann::json::object();  // extra handler settings

  // An external handler's `concurrency`: one limit shared by every step, in every chartflow
  // process, that runs the same program (claims enforce it as they do a step's own limit).
  // 0 when it sets none.
  int shared_limit() const;
  // The claim key of that limit: the same for every step running the same program.
  std::string shared_limit_key() const;
};

// What becomes of a step whose last attempt failed (not a permanent failure: that fails the run
// whatever this says). kPark: the step waits, holding no lease, for an operator to retry, skip
// or fail it, and its run is parked meanwhile.
enum class OnExhausted { kFail, kPark };

// A step run once per element of a list in the run's context (docs/workflows.md, "Fan-out").
struct ForEach {
  std::string pointer;  // into {"event": ..., "steps": {name: output}}, as a condition's path
  int concurrency = 0;  // elements of one run running at once; 0 = no bound of its own
};

// A step that starts a run of another workflow and waits for its end (docs/workflows.md,
// "Child workflows"). Its handler name is kChildWorkflowHandler; the engine runs it itself.
struct ChildWorkflow {
  std::string workflow;
  int line = 0;  // where the file names it, for the loader's messages only (not hashed)
};
inline constexpr const char* kChildWorkflowHandler = "workflow";

struct Step {
  std::string name;
  HandlerSpec handler;
  std::vector<std::string> needs;
  std::optional<Condition> when;  // evaluated against {"event": ..., "steps": {name: output}}
  RetryPolicy retry;
  OnExhausted on_exhausted = OnExhausted::kFail;
  Millis timeout = kDefaultStepTimeout;
  Concurrency concurrency;
  nlohmann::json input = nlohmann::json::object();
  std::optional<ForEach> for_each;
  std::optional<ChildWorkflow> child;
};

struct Workflow {
  std::string name;
  std::string description;
  std::vector<Trigger> triggers;
  std::vector<Step> steps;  // in topological order (every step after all it needs)
  std::string source_file;  // where it was loaded from (for messages only)

  const Step* find_step(const std::string& step_name) const;
  // Canonical JSON (stored per version in the database; also the content that is hashed).
  nlohmann::json to_json() const;
  static Workflow from_json(const nlohmann::json& j);
};

}  // namespace chartflow::core
