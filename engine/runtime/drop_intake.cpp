#include "runtime/drop_intake.hpp"

namespace chartflow::runtime {

bool valid_drop_type(std::string_view name) {
  if (name.empty() || name.size() > 200 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

DropKind drop_kind(const DropEntry& entry) {
  if (!entry.subfolder.empty()) return DropKind::kEvent;
  const std::string_view name = entry.name;
  return name.size() > 5 && name.ends_with(".json") ? DropKind::kChart : DropKind::kObject;
}

std::size_t drop_size_limit(const DropEntry& entry, const DropLimits& limits) {
  switch (drop_kind(entry)) {
    case DropKind::kEvent:
      return limits.event_bytes;
    case DropKind::kChart:
      return limits.chart_bytes;
    case DropKind::kObject:
      break;
  }
  return limits.object_bytes;
}

std::string drop_too_large(std::size_t size, std::size_t limit) {
  return "the file has " + std::to_string(size) + " bytes, more than the limit of " +
         std::to_string(limit);
}

DropDecision classify_drop_file(const DropEntry& entry, std::string_view bytes,
                                const DropPolicy& policy) {
  DropDecision d;
  d.kind = drop_kind(entry);
  auto reject = [&](std::string why) {
    d.rejection = std::move(why);
    d.body = nullptr;
    return d;
  };
  if (d.kind == DropKind::kEvent) {
    const std::string& type = entry.subfolder;
    if (!valid_drop_type(type)) return reject("the subfolder's name is not an event type");
    if (policy.reserved)
      if (auto why = policy.reserved->refusal(type)) return reject(*why);
    if (policy.requires_signature && policy.requires_signature(type))
      return reject("event type '" + type +
                    "' must be signed (its webhook has a secret): a file carries no signature, so "
                    "it may not create this type; send it to POST /v1/events/" +
                    type + " with X-Chartflow-Signature");
  }
  const std::size_t limit = drop_size_limit(entry, policy.limits);
  if (bytes.size() > limit) return reject(drop_too_large(bytes.size(), limit));
  if (d.kind == DropKind::kObject) return d;
  // Before any parser: a text nested 500,000 deep must not reach a recursive one.
  if (auto breach = core::check_json_limits(bytes, policy.limits.json))
    return reject(breach->describe() + ", the limit for a drop-folder file");
  if (d.kind == DropKind::kChart) return d;  // the chart intake parses and validates it
  Json body;
  try {
    body = Json::parse(bytes);
  } catch (const Json::parse_error& e) {
    return reject("not valid JSON: byte " + std::to_string(e.byte));
  } catch (const Json::exception&) {
    return reject("not valid JSON");
  }
  if (!body.is_object()) return reject("the event body must be a JSON object");
  d.body = std::move(body);
  return d;
}

}  // namespace chartflow::runtime
