#include "core/run_migration.hpp"

#include <fmt/format.h>

#include <set>

#include "core/for_each.hpp"

namespace chartflow::core {
namespace {

bool done(const std::string& status) { return status == "succeeded" || status == "skipped"; }

std::string renamed(const StepRenames& renames, const std::string& key) {
  const auto it = renames.find(key);
  return it == renames.end() ? key : it->second;
}

nlohmann::json step_list(const RunMigrationPlan& plan, PlannedStep::Kind kind) {
  auto out = nlohmann::json::array();
  for (const auto& s : plan.steps) {
    if (s.kind != kind) continue;
    nlohmann::json o = {{"step", s.key}, {"status", s.status}};
    if (!s.from.empty() && s.from != s.key) o["from"] = s.from;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

bool step_not_started(const RunStepState& step) {
  if (step.status == "pending" || step.status == "ready") return true;
  // A held step that was retrying has run before: it keeps its attempts like any started step.
  return step.status == "paused" && step.held_status.value_or("ready") != "retrying";
}

nlohmann::json RunMigrationPlan::to_json() const {
  if (!movable) return {{"movable", false}, {"reason", reason}};
  return {{"movable", true},
          {"kept", step_list(*this, PlannedStep::Kind::kKept)},
          {"updated", step_list(*this, PlannedStep::Kind::kUpdated)},
          {"added", step_list(*this, PlannedStep::Kind::kAdded)},
          {"dropped", dropped},
          {"next", next},
          {"remaining_steps", remaining_steps}};
}

RunMigrationPlan plan_run_migration(const std::vector<RunStepState>& steps,
                                    const std::vector<TargetStep>& target,
                                    const StepRenames& renames, const std::string& version) {
  RunMigrationPlan plan;
  std::set<std::string> in_target;
  for (const auto& t : target) in_target.insert(t.key);
  // A worker holds a running step and will finish it against the definition it started with;
  // moving the run under it would race that finish.
  for (const auto& s : steps)
    if (s.status == "running") {
      plan.reason = "step " + s.key + " is running; move it when it is not";
      return plan;
    }
  for (const auto& s : steps)
    if (const auto element = parse_element_key(s.key)) {
      plan.reason =
          fmt::format("step {} runs once per element (for_each); a run with a fan-out cannot move",
                      element->step);
      return plan;
    }
  std::map<std::string, const RunStepState*> by_new_key;
  for (const auto& s : steps) {
    const std::string key = renamed(renames, s.key);
    // A handler may key what it did on its step's name (a review by run and step, a bill's
    // ledger line): renamed mid-way, its retry or resumption would not find it and act again.
    if (key != s.key && !step_not_started(s) && !done(s.status)) {
      plan.reason = fmt::format(
          "step {} is {}: a step that has started and not finished keeps its name (its handler "
          "may have kept state under it); map only finished or unstarted steps",
          s.key, s.status);
      plan.dropped.clear();
      return plan;
    }
    if (in_target.count(key)) {
      by_new_key[key] = &s;
    } else if (step_not_started(s)) {
      plan.dropped.push_back(s.key);
    } else {
      plan.reason =
          fmt::format("step {} is {} and {} has no step {} (name the step it became with a rename)",
                      s.key, s.status, version, key);
      plan.dropped.clear();
      return plan;
    }
  }
  // Statuses first (a kept step's stays), then what each step still waits for.
  std::map<std::string, std::string> status;
  for (const auto& t : target) {
    const auto it = by_new_key.find(t.key);
    PlannedStep p;
    p.key = t.key;
    if (it == by_new_key.end()) {
      p.kind = PlannedStep::Kind::kAdded;
    } else {
      p.from = it->second->key;
      p.kind =
          step_not_started(*it->second) ? PlannedStep::Kind::kUpdated : PlannedStep::Kind::kKept;
      if (p.kind == PlannedStep::Kind::kKept) p.status = it->second->status;
    }
    status[t.key] = p.status;
    plan.steps.push_back(std::move(p));
  }
  for (std::size_t i = 0; i < target.size(); ++i) {
    PlannedStep& p = plan.steps[i];
    if (p.kind == PlannedStep::Kind::kKept) continue;
    for (const auto& need : target[i].needs)
      if (!done(status[need])) ++p.pending_needs;
    const bool held =
        p.kind == PlannedStep::Kind::kUpdated && by_new_key.at(p.key)->status == "paused";
    // A held step stays held (its run or workflow is still paused) unless it must wait again.
    p.status = p.pending_needs > 0 ? "pending" : held ? "paused" : "ready";
  }
  for (const auto& p : plan.steps) {
    if (!done(p.status)) ++plan.remaining_steps;
    if (p.status == "ready") plan.next.push_back(p.key);
  }
  if (plan.remaining_steps == 0) {
    plan.reason = "every step of " + version +
                  " has finished in this run; nothing would be left "
                  "to run";
    return plan;
  }
  plan.movable = true;
  return plan;
}

std::optional<std::string> check_renames(const std::vector<std::string>& from_steps,
                                         const std::vector<std::string>& to_steps,
                                         const StepRenames& renames) {
  const std::set<std::string> from(from_steps.begin(), from_steps.end());
  const std::set<std::string> to(to_steps.begin(), to_steps.end());
  std::map<std::string, std::string> taken;  // new name -> old name
  for (const auto& [old_name, new_name] : renames) {
    if (!from.count(old_name)) return "map: the old version has no step " + old_name;
    if (!to.count(new_name)) return "map: the new version has no step " + new_name;
    if (auto [it, fresh] = taken.emplace(new_name, old_name); !fresh)
      return fmt::format("map: both {} and {} would become {}", it->second, old_name, new_name);
    if (from.count(new_name) && !renames.count(new_name))
      return fmt::format(
          "map: {} would become {}, which the old version already has (rename that one too, or "
          "map another)",
          old_name, new_name);
  }
  return std::nullopt;
}

}  // namespace chartflow::core
