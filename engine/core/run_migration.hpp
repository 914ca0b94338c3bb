// Moving a run to another version of its workflow (issue #17 item 6): which of the run's steps
// keep their state, which take the new version's definition, which are added or dropped, and
// what runs next. Pure: the store plans with this both for a dry run and, with the run locked,
// for the move itself, so a dry run answers exactly what the move then does.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace chartflow::core {

// Old step name -> new step name, for steps the new version renamed.
using StepRenames = std::map<std::string, std::string>;

// A step of the run as it is now.
struct RunStepState {
  std::string key;
  std::string status;
  std::optional<std::string> held_status;  // a 'paused' step's status before it was held
};

// A step of the version the run moves to: its name and what it needs (by new names).
struct TargetStep {
  std::string key;
  std::vector<std::string> needs;
};

struct PlannedStep {
  // kKept: started or finished, keeps its state (and output). kUpdated: not started, takes the
  // new version's definition. kAdded: only in the new version.
  enum class Kind { kKept, kUpdated, kAdded };
  std::string key;   // the name in the new version
  std::string from;  // the name in the run before the move; "" for an added step
  Kind kind = Kind::kKept;
  std::string status;  // after the move
  int pending_needs = 0;
};

struct RunMigrationPlan {
  bool movable = false;
  std::string reason;                // why not, when not movable
  std::vector<PlannedStep> steps;    // after the move, in the new version's order
  std::vector<std::string> dropped;  // not started and not in the new version: deleted
  std::vector<std::string> next;     // ready right after the move
  int remaining_steps = 0;           // neither succeeded nor skipped after the move

  nlohmann::json to_json() const;
};

// True for a step that has not started: pending, ready, or paused while it was one of them. A
// step that has started (or ended) keeps its state and must exist in the new version.
bool step_not_started(const RunStepState& step);

// What moving a run with these steps to `target` (in its order) does. `version` names the
// target in refusals ("version 2").
RunMigrationPlan plan_run_migration(const std::vector<RunStepState>& steps,
                                    const std::vector<TargetStep>& target,
                                    const StepRenames& renames, const std::string& version);

// Checks a rename map against the step names of the two versions: every old name is a step of
// `from`, every new one a step of `to`, no two old names share a new one, and no new name is
// also a step of `from` that keeps its own name. The problem, or nullopt.
std::optional<std::string> check_renames(const std::vector<std::string>& from_steps,
                                         const std::vector<std::string>& to_steps,
                                         const StepRenames& renames);

}  // namespace chartflow::core
