// Traces (W3C Trace Context and OTLP/JSON), the pure part: parsing a `traceparent` header,
// deriving span ids, and encoding spans as an OTLP/HTTP JSON ExportTraceServiceRequest. No I/O:
// runtime/trace_export.hpp sends what this encodes.
//
// A run is a trace: its root span's id and each step attempt's span id are derived from the run
// id (and step, attempt), so nothing per step is stored to find them again; only the event keeps
// the trace id and the caller's span id (schema/engine/0014_traces.sql).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chartflow::core {

// The trace an event belongs to: 32 lowercase hex digits, and the span of whoever sent it
// (16 hex digits, "" when the trace was started here).
struct TraceContext {
  std::string trace_id;
  std::string parent_span_id;
};

// A `traceparent` value (version 00, or a later version read as 00 allows); nullopt when
// malformed, including the all-zero ids the spec forbids.
std::optional<TraceContext> parse_traceparent(std::string_view header);
// "00-<trace id>-<span id>-01".
std::string format_traceparent(std::string_view trace_id, std::string_view span_id);
bool valid_trace_id(std::string_view id);
bool valid_span_id(std::string_view id);

// Span ids, derived (never zero) so any process can name a run's spans without storing them.
std::string run_span_id(std::string_view trace_id, std::int64_t run_id);
std::string step_span_id(std::string_view trace_id, std::int64_t run_id, std::string_view step,
                         int attempt);

// One finished span. Attributes carry engine ids only (workflow, step, run id, attempt,
// status, durations): never an event body or anything from one.
struct Span {
  std::string trace_id, span_id, parent_span_id, name;
  std::int64_t start_ns = 0, end_ns = 0;  // Unix epoch nanoseconds
  bool error = false;
  std::string status_message;  // with error: a short, id-only reason class
  std::vector<std::pair<std::string, std::string>> string_attributes;
  std::vector<std::pair<std::string, std::int64_t>> int_attributes;
};

// The OTLP/HTTP JSON body (POST {endpoint}/v1/traces): ids as hex, 64-bit integers as decimal
// strings, enums as numbers, all spans under one resource (service.name = `service`).
nlohmann::json otlp_trace_request(const std::vector<Span>& spans, std::string_view service,
                                  std::string_view instance);

}  // namespace chartflow::core
