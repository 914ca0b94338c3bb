// `on_exhausted` in workflow files: per step, with a workflow-wide default; a bad value is an
// error with its file and line, like every other key. Read through the stored definition (the
// JSON every version is kept as), which is also what a run's steps are decided by.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/config_error_matchers.hpp"
#include "config/workflow_loader.hpp"

namespace chartflow::config {
namespace {

using ::testing::Contains;
using json = nlohmann::json;

LoadResult load(const std::string& text) { return load_workflow_text(text, "park.yaml", {}); }

auto error_at(int line, const std::string& text) { return error_in("park.yaml", line, text); }

// The step's on_exhausted as stored; "fail" when the definition leaves it out.
std::string on_exhausted(const json& definition, const std::string& step) {
  for (const auto& s : definition.at("steps"))
    if (s.at("name") == step) return s.value("on_exhausted", "fail");
  return "(no step " + step + ")";
}

TEST(OnExhausted, StepsParkPerStepOrByTheWorkflowDefault) {
  const auto r = load(
      "name: parking\n"
      "on: [{ event: demo.park }]\n"
      "on_exhausted: park\n"
      "steps:\n"
      "  a: { handler: noop }\n"
      "  b: { handler: noop, needs: [a], on_exhausted: fail }\n"
      "  c: { handler: noop, needs: [a], on_exhausted: park }\n");
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  const json stored = r.workflow->to_json();
  EXPECT_EQ(on_exhausted(stored, "a"), "park");
  EXPECT_EQ(on_exhausted(stored, "b"), "fail");
  EXPECT_EQ(on_exhausted(stored, "c"), "park");
  // Read back from the database, a version decides the same.
  const json again = core::Workflow::from_json(stored).to_json();
  EXPECT_EQ(again, stored);
}

TEST(OnExhausted, DefaultIsFailAndLeavesTheStoredDefinitionAsItWas) {
  const auto r = load(
      "name: plain\n"
      "on: [{ event: demo.plain }]\n"
      "steps:\n"
      "  a: { handler: noop, retry: { max_attempts: 2 } }\n");
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  // Absent when it is the default, so existing workflows keep their content hash (a new hash
  // would publish every workflow as a new version).
  EXPECT_FALSE(r.workflow->to_json().at("steps").at(0).contains("on_exhausted"));
}

TEST(OnExhausted, ABadValueIsAnErrorWithItsLine) {
  const auto r = load(
      "name: bad\n"
      "on: [{ event: demo.bad }]\n"
      "on_exhausted: wait\n"
      "steps:\n"
      "  a:\n"
      "    handler: noop\n"
      "    on_exhausted: [park]\n");
  EXPECT_FALSE(r.workflow);
  EXPECT_THAT(r.errors, Contains(error_at(3, "on_exhausted must be park or fail, not 'wait'")))
      << dump(r.errors);
  EXPECT_THAT(r.errors, Contains(error_at(7, "step 'a': on_exhausted must be park or fail")))
      << dump(r.errors);
}

}  // namespace
}  // namespace chartflow::config
