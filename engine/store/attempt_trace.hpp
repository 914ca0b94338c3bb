// What the span of an attempt the dispatcher ends (timeout, lost lease) needs and the expiry
// scan does not read: the run's trace and when the attempt was claimed. Read only with spans
// exported (runtime/engine_traces.cpp), so the expiry scan itself stays as it was.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "store/store.hpp"

namespace chartflow::store {

struct AttemptTrace {
  std::string trace_id;
  std::optional<std::string> trace_parent;  // the caller's span of the run's event
  std::string workflow, handler;
  TimePoint claimed_at;  // the attempt's deadline less the step's timeout
};

// Nullopt for a run whose event is from before traces, or a step no longer there.
std::optional<AttemptTrace> attempt_trace(Store& store, std::int64_t run_id,
                                          const std::string& step_key);

}  // namespace chartflow::store
