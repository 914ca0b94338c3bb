#include "runtime/incoming_trace.hpp"

namespace chartflow::runtime {
namespace {

thread_local const core::TraceContext* current_trace = nullptr;

}  // namespace

IncomingTrace::IncomingTrace(std::optional<std::string_view> traceparent)
    : previous_(current_trace) {
  if (traceparent) ctx_ = core::parse_traceparent(*traceparent);
  current_trace = ctx_ ? &*ctx_ : nullptr;
}

IncomingTrace::~IncomingTrace() { current_trace = previous_; }

const core::TraceContext* IncomingTrace::current() { return current_trace; }

void IncomingTrace::apply(EventInput& event) {
  if (event.trace_id || current_trace == nullptr) return;
  event.trace_id = current_trace->trace_id;
  if (!current_trace->parent_span_id.empty()) event.trace_parent = current_trace->parent_span_id;
}

}  // namespace chartflow::runtime
