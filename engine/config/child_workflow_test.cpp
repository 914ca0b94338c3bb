// `workflow: name` steps in workflow files (issue #18 part 3): a step runs a child workflow in
// place of a handler. Exactly one of the two, no for_each beside it; the named workflow must be
// loaded beside it and no chain of children may come back to where it started (checked when a
// directory is loaded, with the file and line).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/config_error_matchers.hpp"
#include "config/workflow_loader.hpp"

namespace chartflow::config {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;
using json = nlohmann::json;
namespace fs = std::filesystem;

LoadResult load(const std::string& text) { return load_workflow_text(text, "child.yaml", {}); }

std::string with_step(const std::string& keys) {
  return "name: parent\n"
         "on: [{ event: demo.parent }]\n"
         "steps:\n"
         "  first: { handler: noop }\n"
         "  review: { " +
         keys + " }\n";
}

TEST(ChildWorkflowConfig, AStepNamesItsChildWorkflowAndStoresIt) {
  const auto r = load(with_step("workflow: second-opinion, needs: [first], input: { level: 2 }"));
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  const core::Step* review = r.workflow->find_step("review");
  ASSERT_TRUE(review && review->child);
  EXPECT_EQ(review->child->workflow, "second-opinion");
  EXPECT_EQ(review->child->line, 5);
  EXPECT_EQ(review->handler.name, core::kChildWorkflowHandler);
  EXPECT_EQ(review->input, json({{"level", 2}}));
  const json stored = r.workflow->to_json();
  EXPECT_EQ(core::Workflow::from_json(stored).to_json(), stored);
  // A step without a child stores nothing new: existing versions keep their hash.
  EXPECT_FALSE(stored.at("steps").at(0).contains("workflow"));
}

TEST(ChildWorkflowConfig, ExactlyOneOfHandlerAndWorkflow) {
  EXPECT_THAT(load(with_step("handler: noop, workflow: other")).errors,
              Contains(error_in("child.yaml", 5, "has both handler and workflow")));
  EXPECT_THAT(load(with_step("needs: [first]")).errors,
              Contains(error_in("child.yaml", 5, "missing required key 'handler'")));
  EXPECT_THAT(load(with_step("workflow: Not A Name")).errors,
              Contains(error_in("child.yaml", 5, "workflow must be the name of a workflow")));
  EXPECT_THAT(load(with_step("workflow: other, for_each: /event/items")).errors,
              Contains(error_in("child.yaml", 5, "a child workflow step cannot have for_each")));
}

class ChildWorkflowDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("chartflow-child-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& file, const std::string& name, const std::string& child) {
    std::ofstream(dir_ / file) << "name: " << name
                               << "\n"
                                  "on: [{ event: demo."
                               << name
                               << " }]\n"
                                  "steps:\n"
                                  "  first: { handler: noop }\n"
                               << (child.empty() ? "" : "  call:\n    workflow: " + child + "\n");
  }
  fs::path dir_;
};

TEST_F(ChildWorkflowDir, TheNamedWorkflowMustBeLoadedBesideIt) {
  write("a.yaml", "parent", "second-opinion");
  write("b.yaml", "other", "");
  const DirResult r = load_workflow_dir(dir_, {});
  EXPECT_THAT(r.errors, Contains(error_in((dir_ / "a.yaml").string(), 6,
                                          "step 'call': workflow 'second-opinion' is not defined")))
      << dump(r.errors);
  write("c.yaml", "second-opinion", "");
  EXPECT_THAT(load_workflow_dir(dir_, {}).errors, IsEmpty());
}

TEST_F(ChildWorkflowDir, ChildWorkflowsMayNotFormACycle) {
  write("a.yaml", "alpha", "beta");
  write("b.yaml", "beta", "gamma");
  write("c.yaml", "gamma", "alpha");
  const DirResult r = load_workflow_dir(dir_, {});
  EXPECT_THAT(r.errors,
              Contains(error_in((dir_ / "a.yaml").string(), 0,
                                "child workflows form a cycle: alpha -> beta -> gamma -> alpha")))
      << dump(r.errors);
  write("c.yaml", "gamma", "gamma");  // a workflow that starts itself
  EXPECT_THAT(load_workflow_dir(dir_, {}).errors,
              Contains(error_in((dir_ / "c.yaml").string(), 0,
                                "child workflows form a cycle: gamma -> gamma")));
}

// Each child runs one level below its parent and a run refuses to start a child 17 levels down
// (runtime/child_workflows.cpp): a chain of workflows that deep could only ever fail there.
TEST_F(ChildWorkflowDir, ChildWorkflowsMayNotNestDeeperThanTheLimit) {
  auto name = [](int i) { return "level-" + std::to_string(i); };
  // level-0 starts level-1 ... level-16: 16 levels of children, the most that run.
  for (int i = 0; i <= 16; ++i) write(name(i) + ".yaml", name(i), i < 16 ? name(i + 1) : "");
  EXPECT_THAT(load_workflow_dir(dir_, {}).errors, IsEmpty());
  write("level-16.yaml", name(16), name(17));
  write("level-17.yaml", name(17), "");
  const DirResult r = load_workflow_dir(dir_, {});
  std::string chain;
  for (int i = 0; i <= 17; ++i) chain += (i ? " -> " : "") + name(i);
  EXPECT_THAT(r.errors, Contains(error_in((dir_ / "level-0.yaml").string(), 0,
                                          "child workflows nest 17 levels deep, more than the "
                                          "limit of 16: " +
                                              chain)))
      << dump(r.errors);
}

}  // namespace
}  // namespace chartflow::config
