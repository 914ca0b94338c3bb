// Spans of claims that run no handler (a for_each step's fan-out and fan-in) and of attempts the
// dispatcher ends (timeout, lost lease): runtime/engine_traces.cpp, beside the handlers' own.
// Ids only, as every span (docs/operations.md, Traces).
#pragma once

#include <optional>
#include <vector>

#include "core/trace.hpp"
#include "core/workflow.hpp"
#include "store/attempt_trace.hpp"
#include "store/store.hpp"

namespace chartflow::runtime {

// `kind` "fan-out" or "fan-in", over `elements` elements; nothing for a run without a trace.
void claim_span(std::vector<core::Span>& out, const store::ClaimedStep& s, const core::Step& def,
                const char* kind, std::size_t elements);
// The ended attempt's span (status error) and, where the expiry failed its run (`run`), the
// run's root span.
std::vector<core::Span> expired_spans(const store::Expired& e, const store::AttemptTrace& t,
                                      const std::optional<store::Store::RunTimes>& run);

}  // namespace chartflow::runtime
