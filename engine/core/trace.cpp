#include "core/trace.hpp"

#include <algorithm>

namespace chartflow::core {
namespace {

bool lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

// FNV-1a then a final avalanche (splitmix64's): span ids need to be distinct within a trace,
// not secret, and the same in every process and version.
std::uint64_t hash64(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

std::string hex16(std::uint64_t v) {
  if (v == 0) v = 1;  // the all-zero span id is invalid
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = digits[v & 0xF];
  return out;
}

nlohmann::json string_attribute(std::string_view key, std::string_view value) {
  return {{"key", key}, {"value", {{"stringValue", value}}}};
}

}  // namespace

bool valid_trace_id(std::string_view id) {
  return id.size() == 32 && lower_hex(id) && !all_zero(id);
}

bool valid_span_id(std::string_view id) {
  return id.size() == 16 && lower_hex(id) && !all_zero(id);
}

std::optional<TraceContext> parse_traceparent(std::string_view h) {
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 characters.
  constexpr std::size_t kLength = 55;
  if (h.size() < kLength) return std::nullopt;
  const std::string_view version = h.substr(0, 2);
  if (!lower_hex(version) || version == "ff") return std::nullopt;
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  // Version 00 is exactly this long; a later version may append "-..." fields we do not read.
  if (h.size() > kLength && (version == "00" || h[kLength] != '-')) return std::nullopt;
  const std::string_view trace = h.substr(3, 32), span = h.substr(36, 16), flags = h.substr(53, 2);
  if (!valid_trace_id(trace) || !valid_span_id(span) || !lower_hex(flags)) return std::nullopt;
  return TraceContext{std::string(trace), std::string(span)};
}

std::string format_traceparent(std::string_view trace_id, std::string_view span_id) {
  std::string out = "00-";
  out.append(trace_id).append("-").append(span_id).append("-01");
  return out;
}

std::string run_span_id(std::string_view trace_id, std::int64_t run_id) {
  std::string key = "run/";
  key.append(trace_id).append("/").append(std::to_string(run_id));
  return hex16(hash64(key));
}

std::string step_span_id(std::string_view trace_id, std::int64_t run_id, std::string_view step,
                         int attempt) {
  // The attempt before the step name: a step name may hold "/" but not start the key's end.
  std::string key = "step/";
  key.append(trace_id)
      .append("/")
      .append(std::to_string(run_id))
      .append("/")
      .append(std::to_string(attempt))
      .append("/")
      .append(step);
  return hex16(hash64(key));
}

nlohmann::json otlp_trace_request(const std::vector<Span>& spans, std::string_view service,
                                  std::string_view instance) {
  using nlohmann::json;
  constexpr int kSpanKindInternal = 1;
  constexpr int kStatusOk = 1, kStatusError = 2;
  json out = json::array();
  for (const auto& s : spans) {
    json attributes = json::array();
    for (const auto& [k, v] : s.string_attributes) attributes.push_back(string_attribute(k, v));
    for (const auto& [k, v] : s.int_attributes)
      attributes.push_back({{"key", k}, {"value", {{"intValue", std::to_string(v)}}}});
    json span = {{"traceId", s.trace_id},
                 {"spanId", s.span_id},
                 {"name", s.name},
                 {"kind", kSpanKindInternal},
                 {"startTimeUnixNano", std::to_string(s.start_ns)},
                 {"endTimeUnixNano", std::to_string(s.end_ns)},
                 {"attributes", std::move(attributes)}};
    if (!s.parent_span_id.empty()) span["parentSpanId"] = s.parent_span_id;
    json status = {{"code", s.error ? kStatusError : kStatusOk}};
    if (s.error && !s.status_message.empty()) status["message"] = s.status_message;
    span["status"] = std::move(status);
    out.push_back(std::move(span));
  }
  json resource = {
      {"attributes", json::array({string_attribute("service.name", service),
                                  string_attribute("service.instance.id", instance)})}};
  return {{"resourceSpans",
           json::array({{{"resource", std::move(resource)},
                         {"scopeSpans", json::array({{{"scope", {{"name", "chartflow"}}},
                                                      {"spans", std::move(out)}}})}}})}};
}

}  // namespace chartflow::core
