// Utility handlers in the spirit of Step Functions' Pass/Wait/Fail states, for tests,
// benchmarks and examples.
#pragma once

#include "engine/handler.hpp"

namespace chartflow::runtime {

// noop: succeeds, output = its input. sleep: waits input.ms without holding a thread.
// fail: fails with input.message (input.permanent: no retries). flaky: fails the first
// input.failures attempts, then succeeds. wait_signal: waits for signal input.signal (with
// input.timeout_ms as deadline). work: holds its thread for input.ms (tests of timeouts/crashes).
void register_builtin_handlers(HandlerRegistry& registry);

}  // namespace chartflow::runtime
