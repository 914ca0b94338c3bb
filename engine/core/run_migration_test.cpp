#include "core/run_migration.hpp"

#include <gtest/gtest.h>

namespace chartflow::core {
namespace {

std::vector<RunStepState> run(std::initializer_list<std::pair<const char*, const char*>> steps) {
  std::vector<RunStepState> out;
  for (const auto& [key, status] : steps) out.push_back({key, status, std::nullopt});
  return out;
}

const PlannedStep* find(const RunMigrationPlan& plan, const std::string& key) {
  for (const auto& s : plan.steps)
    if (s.key == key) return &s;
  return nullptr;
}

TEST(RunMigration, StartedStepsKeepTheirStateAndNewStepsWaitForWhatTheyNeed) {
  auto plan = plan_run_migration(
      run({{"a0", "succeeded"}, {"b", "waiting"}, {"c", "pending"}, {"old", "ready"}}),
      {{"a", {}}, {"b2", {"a"}}, {"new", {"b2"}}, {"c", {"new"}}, {"side", {"a"}}},
      {{"a0", "a"}, {"b", "b2"}}, "version 2");
  EXPECT_FALSE(plan.movable);
  EXPECT_EQ(plan.reason,
            "step b is waiting: a step that has started and not finished keeps its name (its "
            "handler may have kept state under it); map only finished or unstarted steps");
  plan = plan_run_migration(
      run({{"a0", "succeeded"}, {"b2", "waiting"}, {"c", "pending"}, {"old", "ready"}}),
      {{"a", {}}, {"b2", {"a"}}, {"new", {"b2"}}, {"c", {"new"}}, {"side", {"a"}}}, {{"a0", "a"}},
      "version 2");
  ASSERT_TRUE(plan.movable) << plan.reason;
  EXPECT_EQ(find(plan, "a")->kind, PlannedStep::Kind::kKept);
  EXPECT_EQ(find(plan, "a")->from, "a0");
  EXPECT_EQ(find(plan, "a")->status, "succeeded");
  EXPECT_EQ(find(plan, "b2")->from, "b2");
  EXPECT_EQ(find(plan, "b2")->status, "waiting");
  EXPECT_EQ(find(plan, "new")->kind, PlannedStep::Kind::kAdded);
  EXPECT_EQ(find(plan, "new")->status, "pending");
  EXPECT_EQ(find(plan, "new")->pending_needs, 1);
  EXPECT_EQ(find(plan, "c")->kind, PlannedStep::Kind::kUpdated);
  EXPECT_EQ(find(plan, "c")->pending_needs, 1);
  EXPECT_EQ(find(plan, "side")->status, "ready");
  EXPECT_EQ(plan.dropped, std::vector<std::string>{"old"});
  EXPECT_EQ(plan.next, std::vector<std::string>{"side"});
  EXPECT_EQ(plan.remaining_steps, 4);
}

TEST(RunMigration, AReadyStepWhoseNewNeedsAreNotDoneWaitsAgain) {
  const auto plan = plan_run_migration(run({{"a", "waiting"}, {"b", "ready"}}),
                                       {{"a", {}}, {"b", {"a"}}}, {}, "version 2");
  ASSERT_TRUE(plan.movable);
  EXPECT_EQ(find(plan, "b")->status, "pending");
  EXPECT_TRUE(plan.next.empty());
}

TEST(RunMigration, AHeldStepStaysHeldUnlessItMustWaitAgain) {
  std::vector<RunStepState> steps = {{"a", "succeeded", std::nullopt},
                                     {"b", "paused", std::string("ready")},
                                     {"c", "paused", std::string("ready")}};
  const auto plan = plan_run_migration(steps, {{"a", {}}, {"b", {"a"}}, {"c", {"x"}}, {"x", {}}},
                                       {}, "version 2");
  ASSERT_TRUE(plan.movable);
  EXPECT_EQ(find(plan, "b")->status, "paused");
  EXPECT_EQ(find(plan, "c")->status, "pending");
  // A held step that was retrying has run: it must be in the new version.
  steps[1].held_status = "retrying";
  const auto refused = plan_run_migration(steps, {{"a", {}}, {"c", {}}}, {}, "version 2");
  EXPECT_FALSE(refused.movable);
  EXPECT_EQ(refused.reason,
            "step b is paused and version 2 has no step b (name the step it "
            "became with a rename)");
}

TEST(RunMigration, RefusesARunningStepAndAStartedStepTheNewVersionLacks) {
  auto plan = plan_run_migration(run({{"a", "running"}, {"b", "pending"}}), {{"a", {}}, {"b", {}}},
                                 {}, "version 3");
  EXPECT_FALSE(plan.movable);
  EXPECT_EQ(plan.reason, "step a is running; move it when it is not");
  EXPECT_EQ(plan.to_json(), (nlohmann::json{{"movable", false}, {"reason", plan.reason}}));
  plan = plan_run_migration(run({{"a", "parked"}}), {{"z", {}}}, {}, "version 3");
  EXPECT_FALSE(plan.movable);
  EXPECT_EQ(plan.reason,
            "step a is parked and version 3 has no step a (name the step it became with a rename)");
  // Mapped, it still stays: a parked step's retry would run under a name its handler never saw
  // (a bill keyed by run and step would be sent again), and so would a retrying or held one.
  for (const auto& steps : {run({{"a", "parked"}}), run({{"a", "retrying"}}),
                            std::vector<RunStepState>{{"a", "paused", std::string("retrying")}}}) {
    plan = plan_run_migration(steps, {{"z", {}}}, {{"a", "z"}}, "v");
    EXPECT_FALSE(plan.movable) << steps[0].status;
    EXPECT_EQ(plan.reason.rfind("step a is " + steps[0].status + ": a step that has started", 0),
              0U)
        << plan.reason;
  }
  // Not started, or finished, a step may be renamed.
  EXPECT_TRUE(plan_run_migration(run({{"a", "ready"}, {"b", "skipped"}}), {{"z", {}}, {"y", {}}},
                                 {{"a", "z"}, {"b", "y"}}, "v")
                  .movable);
}

// A fan-out's elements are rows no version names, and its own row looks unstarted while they
// run: moved, the elements would be dropped and the step would collect nothing.
TEST(RunMigration, RefusesARunWithAFanOutsElements) {
  const auto plan = plan_run_migration(run({{"extract", "succeeded"},
                                            {"bill", "pending"},
                                            {"bill[0]", "succeeded"},
                                            {"bill[1]", "ready"}}),
                                       {{"extract", {}}, {"bill", {"extract"}}}, {}, "version 2");
  EXPECT_FALSE(plan.movable);
  EXPECT_EQ(plan.reason,
            "step bill runs once per element (for_each); a run with a fan-out cannot move");
}

TEST(RunMigration, RefusesAMoveThatWouldLeaveNothingToRun) {
  const auto plan =
      plan_run_migration(run({{"a", "succeeded"}, {"b", "pending"}}), {{"a", {}}}, {}, "version 2");
  EXPECT_FALSE(plan.movable);
  EXPECT_NE(plan.reason.find("nothing would be left to run"), std::string::npos);
}

TEST(RunMigration, RenamesAreCheckedAgainstBothVersions) {
  const std::vector<std::string> from = {"a", "b"}, to = {"a", "c", "d"};
  EXPECT_EQ(check_renames(from, to, {{"b", "c"}}), std::nullopt);
  EXPECT_EQ(check_renames(from, to, {{"x", "c"}}), "map: the old version has no step x");
  EXPECT_EQ(check_renames(from, to, {{"b", "x"}}), "map: the new version has no step x");
  EXPECT_EQ(check_renames(from, to, {{"a", "c"}, {"b", "c"}}), "map: both a and b would become c");
  EXPECT_NE(check_renames(from, to, {{"b", "a"}}), std::nullopt);
  // A swap renames both, so neither collides.
  EXPECT_EQ(check_renames({"a", "c"}, {"a", "c"}, {{"a", "c"}, {"c", "a"}}), std::nullopt);
}

}  // namespace
}  // namespace chartflow::core
