#include "config/workflow_validation.hpp"

#include <date/tz.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/step_graph.hpp"

namespace chartflow::config {
namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

}  // namespace

bool known_zone(const std::string& name) {
  try {
    date::locate_zone(name);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool valid_workflow_name(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength || !is_lower_alnum(s[0])) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_lower_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool valid_step_name(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_lower_alnum(c) || c == '_' || c == '-'; });
}

bool valid_event_type(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool is_event_path(const std::string& p) { return p == "/event" || p.rfind("/event/", 0) == 0; }

bool is_event_pointer(const std::string& p) {
  if (!is_event_path(p)) return false;
  try {
    (void)nlohmann::json::json_pointer(p);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

bool valid_memory_size(const std::string& s) {
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (n > 1'000'000'000'000) return false;
    n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0 || n == 0) return false;
  static const std::set<std::string, std::less<>> kUnits = {
      "",   "k",  "K",  "M",  "G",  "T",   "Ki",  "Mi",  "Gi", "Ti",
      "kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"};
  return kUnits.count(std::string_view(s).substr(i)) != 0;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<core::Step> order_steps(std::vector<ParsedStep> parsed, ErrorList& errors) {
  std::vector<core::Step> steps;
  steps.reserve(parsed.size());
  for (auto& p : parsed) steps.push_back(std::move(p.step));
  const core::StepGraph graph(steps);

  std::vector<std::string_view> names;
  names.reserve(steps.size());
  for (const auto& s : steps) names.push_back(s.name);
  for (const auto& bad : graph.bad_needs()) {
    const core::Step& s = steps[bad.step];
    const std::string& need = s.needs[bad.need];
    const int line = parsed[bad.step].need_lines[bad.need];
    const std::string where = fmt::format("step '{}': ", s.name);
    switch (bad.problem) {
      case core::StepGraph::NeedProblem::kSelf:
        errors.add(line, where + "needs itself");
        break;
      case core::StepGraph::NeedProblem::kUnknown:
        errors.add(line, fmt::format("{}needs unknown step '{}'{}", where, need,
                                     did_you_mean(need, names)));
        break;
      case core::StepGraph::NeedProblem::kTwice:
        errors.add(line, fmt::format("{}needs '{}' twice", where, need));
        break;
    }
  }

  for (const auto& cycle : graph.cycles()) {
    std::string text;
    for (std::size_t c : cycle) text += steps[c].name + " -> ";
    text += steps[cycle.front()].name;
    errors.add(parsed[cycle.front()].line,
               fmt::format("steps form a cycle: {} (each needs the next)", text));
  }

  for (std::size_t i = 0; i < steps.size(); ++i) {
    // A for_each pointer reads the same context as a condition, under the same rules.
    auto paths = parsed[i].when_paths;
    if (parsed[i].for_each_path) paths.push_back(*parsed[i].for_each_path);
    if (paths.empty()) continue;
    const std::vector<bool> upstream = graph.upstream(i);
    const std::string& self = steps[i].name;
    for (std::size_t k = 0; k < paths.size(); ++k) {
      const auto& [path, line] = paths[k];
      if (is_event_path(path)) continue;
      const char* key = k < parsed[i].when_paths.size() ? "when" : "for_each";
      const std::string where = fmt::format("step '{}': {}: path '{}' ", self, key, path);
      if (path.rfind("/steps/", 0) != 0 || path.size() == 7) {
        errors.add(line, where + "must start with /event or /steps/<step>");
        continue;
      }
      const std::string target = path.substr(7, path.find('/', 7) - 7);
      const auto target_index = graph.find(target);
      if (!target_index) {
        errors.add(line, fmt::format("{}refers to unknown step '{}'", where, target));
      } else if (*target_index == i) {
        errors.add(
            line, where + "refers to the step itself; a condition sees only steps that ran before");
      } else if (!upstream[*target_index]) {
        errors.add(line, fmt::format("{}refers to step '{}', which '{}' does not need; add it to "
                                     "needs",
                                     where, target, self));
      }
    }
  }

  std::vector<core::Step> ordered;
  ordered.reserve(graph.order().size());
  for (std::size_t i : graph.order()) ordered.push_back(std::move(steps[i]));
  return ordered;
}

}  // namespace chartflow::config
