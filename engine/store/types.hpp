// Engine values the store reads and writes. No libpqxx types leak out of store/.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/events.hpp"

namespace chartflow::store {

using Json = nlohmann::json;
using TimePoint = std::chrono::system_clock::time_point;

struct WorkflowVersion {
  std::int64_t id = 0;
  std::string name;
  int version = 0;
  std::string content_hash;
  Json definition;
  bool created = false;  // true when this call stored a new version
};

// A step row as it is about to be created for a new run.
struct StepPlan {
  std::string step_key;
  std::string handler;
  std::vector<std::string> needs;
  int max_attempts = 1;
  int timeout_ms = 30000;
  std::optional<std::string> concurrency_key;
  std::optional<int> concurrency_limit;
};

// A trigger's `debounce` as it applies to one event: the run is not started now but pending
// under (workflow, key_value), due `window_ms` after the latest event and at most `max_wait_ms`
// after the first (schema/engine/0013_debounce.sql).
struct DebouncePlan {
  std::string key_value;  // may be patient data (a chart id): never logged
  std::int64_t window_ms = 0;
  std::int64_t max_wait_ms = 0;
};

struct RunPlan {
  std::int64_t workflow_version_id = 0;
  std::string workflow;
  std::vector<StepPlan> steps;
  std::optional<DebouncePlan> debounce;  // set: coalesce instead of starting the run now
};

// A run a due debounced start became, standing for `events` coalesced events.
struct DebouncedStart {
  std::int64_t run_id = 0;
  std::string workflow;
  int events = 0;
};

// Emitted in the transaction that ends a run, so one workflow can start another.
inline constexpr const char* kRunSucceededEvent = "workflow.succeeded";
inline constexpr const char* kRunFailedEvent = "workflow.failed";
// A chain of runs started by run-end events stops here: a workflow that (indirectly) triggers
// itself would otherwise run forever.
inline constexpr int kMaxChainDepth = 16;

using chartflow::EventInput;
using chartflow::IngestResult;

// An event as a worker reads it: its body, and its trace (unset for events older than traces).
struct StoredEvent {
  Json body;
  std::optional<std::string> trace_id, trace_parent;
};

struct ClaimedStep {
  std::int64_t run_id = 0;
  std::string step_key;
  std::string handler;
  int attempt = 0;
  int max_attempts = 1;
  std::int64_t workflow_version_id = 0;
  std::string workflow;
  std::int64_t event_id = 0;
  std::string event_type;
  Json needs_output = Json::object();
  std::optional<Json> wake;
  TimePoint deadline;
  // When the step became due (its run_at, which the claim leaves): its queue wait began then.
  std::optional<TimePoint> ready_at;
  // The run's reprocess flags (StepContext::rerun); {} for a run that is not a reprocess.
  Json rerun = Json::object();
  // Set by the engine, not the claim: the run's trace (its event's).
  std::optional<std::string> trace_id;
};

// One attempt of one step: what a worker holds while it runs the step.
struct StepAttempt {
  std::int64_t run_id = 0;
  std::string step_key;
  int attempt = 0;
};

struct Expired {
  std::int64_t run_id = 0;
  std::string step_key;
  int attempt = 0;
  int max_attempts = 1;
  std::int64_t workflow_version_id = 0;
  bool timed_out = false;  // else the lease expired
};

struct Probe {
  std::optional<TimePoint> next_due;
  std::optional<TimePoint> next_wait;
  std::optional<TimePoint> next_expiry;
  std::optional<TimePoint> next_debounce;  // the earliest pending debounced start
  TimePoint now;
};

// A base backup `chartflow backup` finished; times are RFC 3339.
struct BackupRecord {
  std::string started_at, finished_at, target;
  std::int64_t bytes = 0;
  std::optional<std::string> wal_archive;
};

struct LogRecord {
  int level = 1;
  std::string message;
  std::optional<std::string> workflow;
  std::optional<std::int64_t> run_id;
  std::optional<std::string> step;
  std::optional<int> attempt;
  Json fields = Json::object();
};

}  // namespace chartflow::store
