#include "core/step_graph.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace chartflow::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Steps in file order, each written as {name, needs...}.
std::vector<Step> steps(std::initializer_list<std::vector<std::string>> specs) {
  std::vector<Step> out;
  for (const auto& spec : specs) {
    Step s;
    s.name = spec.front();
    s.needs.assign(spec.begin() + 1, spec.end());
    out.push_back(std::move(s));
  }
  return out;
}

// "step.need:problem" for each bad need, so a failure prints readably.
std::vector<std::string> bad_needs(const StepGraph& g) {
  std::vector<std::string> out;
  for (const auto& b : g.bad_needs()) {
    const char* problem = b.problem == StepGraph::NeedProblem::kSelf      ? "self"
                          : b.problem == StepGraph::NeedProblem::kUnknown ? "unknown"
                                                                          : "twice";
    out.push_back(std::to_string(b.step) + "." + std::to_string(b.need) + ":" + problem);
  }
  return out;
}

TEST(StepGraph, OrdersEachStepAfterItsNeedsKeepingFileOrderAmongReadyOnes) {
  // d needs c, written later: d moves after it; a and b keep their places.
  const StepGraph g(steps({{"d", "c"}, {"a"}, {"c", "a"}, {"b"}}));
  EXPECT_THAT(g.order(), ElementsAre(1, 2, 0, 3));
  EXPECT_THAT(g.cycles(), IsEmpty());
  EXPECT_THAT(g.bad_needs(), IsEmpty());
}

TEST(StepGraph, DiamondRunsTheJoinLast) {
  const StepGraph g(steps({{"a"}, {"b", "a"}, {"c", "a"}, {"d", "b", "c"}}));
  EXPECT_THAT(g.order(), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(g.needs(3), ElementsAre(1, 2));
}

TEST(StepGraph, ReportsBadNeedsInTheOrderWrittenAndLeavesThemOut) {
  const StepGraph g(
      steps({{"fetch"}, {"parse", "fetch", "fecth", "parse"}, {"store", "fetch", "fetch"}}));
  EXPECT_THAT(bad_needs(g), ElementsAre("1.1:unknown", "1.2:self", "2.1:twice"));
  EXPECT_THAT(g.needs(1), ElementsAre(0));
  EXPECT_THAT(g.needs(2), ElementsAre(0));
  EXPECT_THAT(g.order(), ElementsAre(0, 1, 2));
}

TEST(StepGraph, FindsEachCycleOnceStartingAtItsFirstStep) {
  const StepGraph g(steps({{"start"},
                           {"a", "start", "c"},
                           {"b", "a"},
                           {"c", "b"},
                           {"after", "c"},
                           {"x", "y"},
                           {"y", "x"}}));
  // a needs c, c needs b, b needs a.
  EXPECT_THAT(g.cycles(), ElementsAre(ElementsAre(1, 3, 2), ElementsAre(5, 6)));
  // A step that needs a cycle is still placed; the cycle's steps are not.
  EXPECT_THAT(g.order(), ElementsAre(0, 4));
}

TEST(StepGraph, CycleReachedThroughAnotherStepIsFoundAndThatStepPlacedAfter) {
  // The walk starts at "entry", which is stuck behind the cycle but not on it.
  const StepGraph g(steps({{"entry", "p"}, {"p", "q"}, {"q", "p"}}));
  EXPECT_THAT(g.cycles(), ElementsAre(ElementsAre(1, 2)));
  EXPECT_THAT(g.order(), ElementsAre(0));
}

TEST(StepGraph, UpstreamHoldsTransitiveNeedsOnly) {
  const StepGraph g(steps({{"a"}, {"b", "a"}, {"c", "b"}, {"d"}}));
  EXPECT_THAT(g.upstream(2), ElementsAre(true, true, false, false));
  EXPECT_THAT(g.upstream(0), ElementsAre(false, false, false, false));
}

TEST(StepGraph, FindsStepsByName) {
  const StepGraph g(steps({{"a"}, {"b"}}));
  EXPECT_EQ(g.find("b"), 1U);
  EXPECT_EQ(g.find("c"), std::nullopt);
  EXPECT_EQ(g.size(), 2U);
}

}  // namespace
}  // namespace chartflow::core
