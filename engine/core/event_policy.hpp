// Which event types may enter from outside. chartflow emits some types itself (a schedule's tick,
// a run's end, an alert, an object stored, a module's own events such as an accepted chart):
// their bodies are trusted by the workflows that listen to them, so no door from outside (an API
// call, a batch, a drop-folder file, a webhook) may create one. Pure; read-only after start-up.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chartflow::core {

class ReservedEventTypes {
 public:
  // The engine's own: schedule.tick, workflow.succeeded, workflow.failed, alert.*, object.created.
  ReservedEventTypes();

  // `pattern` is a type ("chart.uploaded") or a prefix ending in ".*" ("alert.*").
  void add(std::string pattern);
  bool contains(std::string_view type) const;
  // The message a door answers with, or nullopt when `type` may enter from outside.
  std::optional<std::string> refusal(std::string_view type) const;
  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  std::vector<std::string> patterns_;
};

}  // namespace chartflow::core
