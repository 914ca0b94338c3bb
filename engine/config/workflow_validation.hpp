// The rules a workflow definition must follow beyond its shape: what names, event types and
// sizes look like, and that steps' needs and conditions form a graph that can run. Also the
// "did you mean" hint for near misses. Stateless functions; safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/error_list.hpp"
#include "core/workflow.hpp"

namespace chartflow::config {

inline constexpr std::size_t kMaxNameLength = 100;

// IANA time zone names the date library knows (Europe/Berlin, UTC).
bool known_zone(const std::string& name);
// [a-z0-9][a-z0-9._-]*, at most kMaxNameLength.
bool valid_workflow_name(const std::string& s);
// [a-z0-9_-]+, at most kMaxNameLength.
bool valid_step_name(const std::string& s);
// [A-Za-z0-9._-]+, at most kMaxNameLength.
bool valid_event_type(const std::string& s);
// /event or below: what a trigger filter (and a concurrency key) may read.
bool is_event_path(const std::string& p);
// A valid JSON pointer that starts at /event: a key that groups events or runs names one.
bool is_event_pointer(const std::string& p);
// Sizes as container runtimes write them: bytes, or a number with a decimal or binary unit.
bool valid_memory_size(const std::string& s);

// Levenshtein distance.
std::size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" for a near miss, so a typo costs one look instead of a diff; "" when no
// candidate is close. Of equally close candidates the first wins.
template <typename Names>
std::string did_you_mean(std::string_view word, const Names& candidates) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// A step as parsed, with the lines its graph problems are reported at.
struct ParsedStep {
  core::Step step;
  int line = 0;                                              // of the step's name
  std::vector<int> need_lines;                               // parallel to step.needs
  std::vector<std::pair<std::string, int>> when_paths;       // each condition path and its line
  std::optional<std::pair<std::string, int>> for_each_path;  // the for_each pointer, its line
};

// Checks needs references, orders steps so each comes after all it needs (see core::StepGraph),
// reports cycles, then checks that each condition only reads outputs of steps that are
// guaranteed to have run. Returns the steps in that order; when it reported problems the result
// is incomplete.
std::vector<core::Step> order_steps(std::vector<ParsedStep> parsed, ErrorList& errors);

}  // namespace chartflow::config
