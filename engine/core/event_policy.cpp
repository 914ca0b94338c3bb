#include "core/event_policy.hpp"

namespace chartflow::core {

ReservedEventTypes::ReservedEventTypes()
    : patterns_{"schedule.tick", "workflow.succeeded", "workflow.failed", "alert.*",
                "object.created"} {}

void ReservedEventTypes::add(std::string pattern) {
  for (const auto& p : patterns_)
    if (p == pattern) return;
  patterns_.push_back(std::move(pattern));
}

bool ReservedEventTypes::contains(std::string_view type) const {
  for (const auto& p : patterns_) {
    if (p.size() >= 2 && p.ends_with(".*")) {
      if (type.starts_with(std::string_view(p).substr(0, p.size() - 1))) return true;
    } else if (type == p) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> ReservedEventTypes::refusal(std::string_view type) const {
  if (!contains(type)) return std::nullopt;
  return "event type '" + std::string(type) +
         "' is reserved: chartflow emits it itself, no request or file may create it";
}

}  // namespace chartflow::core
