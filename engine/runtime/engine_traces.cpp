// The spans of runs and step attempts (docs/operations.md, Traces), recorded only when the
// engine has a TraceExporter. Attributes carry engine ids and durations, never an event body, a
// step's input or output, or an error text (which may quote them).
#include <type_traits>

#include "runtime/attempt_spans.hpp"
#include "runtime/engine.hpp"
#include "runtime/log.hpp"
#include "runtime/trace_export.hpp"

namespace chartflow::runtime {
namespace {

std::int64_t epoch_ns(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::int64_t millis_between(TimePoint from, TimePoint to) {
  return std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count());
}

const char* outcome_name(const StepOutcome& outcome) {
  return std::visit(
      [](const auto& o) -> const char* {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Completed>) return "completed";
        if constexpr (std::is_same_v<T, Retry>) return "retry";
        if constexpr (std::is_same_v<T, Fail>) return o.permanent ? "failed_permanently" : "failed";
        if constexpr (std::is_same_v<T, WaitForSignal>) return "waiting_for_signal";
        return "waiting_until";
      },
      outcome);
}

core::Span root_span(const std::string& trace_id, const std::optional<std::string>& parent,
                     const store::Store::RunTimes& t) {
  core::Span span;
  span.trace_id = trace_id;
  span.span_id = core::run_span_id(span.trace_id, t.run_id);
  if (parent) span.parent_span_id = *parent;
  span.name = "run " + t.workflow;
  span.start_ns = epoch_ns(t.started);
  span.end_ns = epoch_ns(t.finished);
  span.error = t.status != "succeeded";
  if (span.error) span.status_message = t.status;
  span.string_attributes = {{"chartflow.workflow", t.workflow}, {"chartflow.status", t.status}};
  span.int_attributes = {{"chartflow.run_id", t.run_id}};
  return span;
}

}  // namespace

void claim_span(std::vector<core::Span>& out, const store::ClaimedStep& s, const core::Step& def,
                const char* kind, std::size_t elements) {
  if (!s.trace_id) return;
  const std::string name = std::string(kind) + " " + s.step_key;
  const TimePoint claimed = s.deadline - def.timeout;
  core::Span span;
  span.trace_id = *s.trace_id;
  // An id of its own: the fan-out gives its attempt back, so the fan-in claims the same number.
  span.span_id = core::step_span_id(span.trace_id, s.run_id, name, s.attempt);
  span.parent_span_id = core::run_span_id(span.trace_id, s.run_id);
  span.name = name;
  span.start_ns = epoch_ns(claimed);
  span.end_ns = epoch_ns(Clock::now());
  span.string_attributes = {{"chartflow.workflow", s.workflow},
                            {"chartflow.step", s.step_key},
                            {"chartflow.outcome", kind}};
  span.int_attributes = {{"chartflow.run_id", s.run_id},
                         {"chartflow.attempt", s.attempt},
                         {"chartflow.elements", static_cast<std::int64_t>(elements)}};
  if (s.ready_at)
    span.int_attributes.emplace_back("chartflow.queue_wait_ms",
                                     millis_between(*s.ready_at, claimed));
  out.push_back(std::move(span));
}

std::vector<core::Span> expired_spans(const store::Expired& e, const store::AttemptTrace& t,
                                      const std::optional<store::Store::RunTimes>& run) {
  const char* outcome = e.timed_out ? "timed_out" : "lease_expired";
  const TimePoint end = Clock::now();
  core::Span span;
  span.trace_id = t.trace_id;
  span.span_id = core::step_span_id(span.trace_id, e.run_id, e.step_key, e.attempt);
  span.parent_span_id = core::run_span_id(span.trace_id, e.run_id);
  span.name = "step " + e.step_key;
  span.start_ns = epoch_ns(t.claimed_at);
  span.end_ns = epoch_ns(end);
  span.error = true;
  span.status_message = outcome;
  span.string_attributes = {{"chartflow.workflow", t.workflow},
                            {"chartflow.step", e.step_key},
                            {"chartflow.handler", t.handler},
                            {"chartflow.outcome", outcome}};
  span.int_attributes = {{"chartflow.run_id", e.run_id},
                         {"chartflow.attempt", e.attempt},
                         {"chartflow.handler_ms", millis_between(t.claimed_at, end)}};
  std::vector<core::Span> out;
  out.push_back(std::move(span));
  if (run && run->status == "failed") out.push_back(root_span(t.trace_id, t.trace_parent, *run));
  return out;
}

void Engine::step_span(std::vector<core::Span>& out, const store::ClaimedStep& s,
                       const core::Step& def, const StepOutcome& outcome,
                       TimePoint handler_start) const {
  if (!s.trace_id) return;  // an event from before traces
  const TimePoint end = Clock::now();
  core::Span span;
  span.trace_id = *s.trace_id;
  span.span_id = core::step_span_id(span.trace_id, s.run_id, s.step_key, s.attempt);
  span.parent_span_id = core::run_span_id(span.trace_id, s.run_id);
  span.name = "step " + s.step_key;
  span.start_ns = epoch_ns(handler_start);
  span.end_ns = epoch_ns(end);
  const char* name = outcome_name(outcome);
  span.error = std::holds_alternative<Retry>(outcome) || std::holds_alternative<Fail>(outcome);
  if (span.error) span.status_message = name;
  span.string_attributes = {{"chartflow.workflow", s.workflow},
                            {"chartflow.step", s.step_key},
                            {"chartflow.handler", s.handler},
                            {"chartflow.outcome", name}};
  span.int_attributes = {{"chartflow.run_id", s.run_id},
                         {"chartflow.attempt", s.attempt},
                         {"chartflow.handler_ms", millis_between(handler_start, end)}};
  // The claim set the deadline at claim time + the step's timeout.
  if (s.ready_at)
    span.int_attributes.emplace_back("chartflow.queue_wait_ms",
                                     millis_between(*s.ready_at, s.deadline - def.timeout));
  out.push_back(std::move(span));
}

void Engine::record_spans(std::vector<core::Span>& spans) const {
  if (settings_.traces)
    for (auto& span : spans) settings_.traces->record(std::move(span));
  spans.clear();
}

void Engine::record_run_spans(store::Store& store, const std::vector<store::ClaimedStep>& steps,
                              const std::vector<std::int64_t>& ended) {
  std::vector<store::Store::RunTimes> times;
  try {
    times = store.run_times(ended);
  } catch (const std::exception& e) {
    // The batch has committed: a failure here must not make the worker run its steps again.
    Log::warn("trace_run_times_failed", {{"error", e.what()}});
    return;
  }
  for (const auto& t : times) {
    const auto step = std::find_if(steps.begin(), steps.end(),
                                   [&](const auto& s) { return s.run_id == t.run_id; });
    if (step == steps.end() || !step->trace_id) continue;
    core::Span span;
    span.trace_id = *step->trace_id;
    span.span_id = core::run_span_id(span.trace_id, t.run_id);
    if (auto event = events_.get(step->event_id); event && event->trace_parent)
      span.parent_span_id = *event->trace_parent;
    span.name = "run " + t.workflow;
    span.start_ns = epoch_ns(t.started);
    span.end_ns = epoch_ns(t.finished);
    span.error = t.status != "succeeded";
    if (span.error) span.status_message = t.status;
    span.string_attributes = {{"chartflow.workflow", t.workflow}, {"chartflow.status", t.status}};
    span.int_attributes = {{"chartflow.run_id", t.run_id}};
    settings_.traces->record(std::move(span));
  }
}

}  // namespace chartflow::runtime
