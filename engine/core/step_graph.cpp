#include "core/step_graph.hpp"

#include <algorithm>

namespace chartflow::core {

StepGraph::StepGraph(const std::vector<Step>& steps) : needs_(steps.size()) {
  for (std::size_t i = 0; i < steps.size(); ++i) index_.emplace(steps[i].name, i);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    for (std::size_t k = 0; k < steps[i].needs.size(); ++k) {
      const std::string& need = steps[i].needs[k];
      const auto it = index_.find(need);
      auto& deps = needs_[i];
      if (need == steps[i].name) {
        bad_needs_.push_back({i, k, NeedProblem::kSelf});
      } else if (it == index_.end()) {
        bad_needs_.push_back({i, k, NeedProblem::kUnknown});
      } else if (std::find(deps.begin(), deps.end(), it->second) != deps.end()) {
        bad_needs_.push_back({i, k, NeedProblem::kTwice});
      } else {
        deps.push_back(it->second);
      }
    }
  }
  sort();
}

std::optional<std::size_t> StepGraph::find(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

void StepGraph::sort() {
  const std::size_t n = needs_.size();
  std::vector<bool> done(n, false);  // placed, or found to be on a cycle
  while (true) {
    for (std::size_t i = 0; i < n;) {
      const bool ready = !done[i] && std::all_of(needs_[i].begin(), needs_[i].end(),
                                                 [&](std::size_t d) { return done[d]; });
      if (ready) {
        done[i] = true;
        order_.push_back(i);
        i = 0;  // an earlier step may have become ready
      } else {
        ++i;
      }
    }
    const auto stuck = std::find(done.begin(), done.end(), false);
    if (stuck == done.end()) return;
    // Every stuck step waits on another stuck one, so walking "first unfinished need" from any of
    // them must revisit a step: that loop is a cycle. Marking it done unblocks what needs it.
    std::vector<std::size_t> path{static_cast<std::size_t>(stuck - done.begin())};
    while (true) {
      const auto& d = needs_[path.back()];
      const std::size_t next =
          *std::find_if(d.begin(), d.end(), [&](std::size_t x) { return !done[x]; });
      const auto seen = std::find(path.begin(), path.end(), next);
      if (seen != path.end()) {
        std::vector<std::size_t> cycle(seen, path.end());
        std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
        for (std::size_t c : cycle) done[c] = true;
        cycles_.push_back(std::move(cycle));
        break;
      }
      path.push_back(next);
    }
  }
}

std::vector<bool> StepGraph::upstream(std::size_t i) const {
  std::vector<bool> out(needs_.size(), false);
  std::vector<std::size_t> todo = needs_.at(i);
  while (!todo.empty()) {
    const std::size_t s = todo.back();
    todo.pop_back();
    if (out[s]) continue;
    out[s] = true;
    todo.insert(todo.end(), needs_[s].begin(), needs_[s].end());
  }
  return out;
}

}  // namespace chartflow::core
