// Child workflows (issue #18 part 3): a step with `workflow: name` starts a run of that workflow
// and waits for its end. The parent continues with the child's outputs; a failed or cancelled
// child fails the step for good; cancelling the parent cancels its unfinished children; a
// restart while the child runs loses nothing; a parent step whose lease was lost before it
// started its child never starts a second one; a cancel racing a child's end deadlocks with it
// no more; and a chain of children stops 16 levels down.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

class Fn : public Handler {
 public:
  explicit Fn(std::function<StepOutcome(StepContext&)> fn) : fn_(std::move(fn)) {}
  StepOutcome run(StepContext& ctx) override { return fn_(ctx); }

 private:
  std::function<StepOutcome(StepContext&)> fn_;
};

constexpr const char* kParent = R"(name: parent
on: [{ event: demo.parent }]
steps:
  review:
    workflow: child
    input: { level: 2 }
  after: { handler: after, needs: [review], when: { path: /steps/review/check/score, equals: 4 } }
)";

constexpr const char* kChild = R"(name: child
on: [{ event: demo.child }]
steps:
  check: { handler: check }
  note: { handler: noop, needs: [check] }
)";

class ChildWorkflowTest : public PgTest {
 protected:
  // The parent and child workflows; `check` is the child's one step of its own.
  std::unique_ptr<EngineHarness> harness(const std::function<StepOutcome(StepContext&)>& check,
                                         const runtime::EngineSettings& settings = {}) {
    auto handlers = std::make_shared<HandlerRegistry>();
    handlers->add("check", std::make_shared<Fn>(check));
    handlers->add("after", std::make_shared<Fn>([this](StepContext& ctx) -> StepOutcome {
                    after_input_ = ctx.input();
                    ++after_calls_;
                    return Completed{Json::object()};
                  }));
    return std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{kParent, kChild},
                                           handlers, settings);
  }
  static StepOutcome scored(StepContext& ctx) {
    return Completed{Json{{"score", ctx.event().at("input").at("level").get<int>() * 2}}};
  }
  // The parent's children, as GET /v1/runs/{id} lists them.
  static Json children(EngineHarness& h, std::int64_t id) { return h.run(id).at("children"); }
  std::int64_t child_of(EngineHarness& h, std::int64_t id) {
    std::int64_t child = 0;
    EXPECT_TRUE(wait_until([&] {
      const Json c = children(h, id);
      if (!c.empty()) child = c.at(0).at("id").get<std::int64_t>();
      return child != 0;
    })) << h.run(id).dump(2);
    return child;
  }
  std::atomic<int> after_calls_{0};
  Json after_input_;
};

TEST_F(ChildWorkflowTest, TheParentWaitsForItsChildAndContinuesWithItsOutputs) {
  auto h = harness(scored);
  h->start();
  const auto id = h->start_run("demo.parent", {{"chart", "c-1"}});
  ASSERT_TRUE(h->wait_status(id, "succeeded")) << h->run(id).dump(2);
  const Json review = h->step(id, "review");
  EXPECT_EQ(review.at("status"), "succeeded");
  // {step: output} of the child's succeeded steps.
  EXPECT_EQ(review.at("output"), Json({{"check", {{"score", 4}}}, {"note", Json::object()}}));
  EXPECT_EQ(h->step(id, "after").at("status"), "succeeded");  // its condition read the output
  EXPECT_EQ(after_calls_.load(), 1);
  const Json kids = children(*h, id);
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_EQ(kids.at(0).at("workflow"), "child");
  EXPECT_EQ(kids.at(0).at("status"), "succeeded");
  EXPECT_EQ(kids.at(0).at("step"), "review");
  const Json child = h->run(kids.at(0).at("id").get<std::int64_t>());
  EXPECT_EQ(child.at("parent_run_id"), id);
  EXPECT_EQ(child.at("parent_step"), "review");
  EXPECT_EQ(child.at("event_type"), "workflow.child");
  EXPECT_TRUE(child.at("children").empty());
  EXPECT_TRUE(h->run(id).at("parent_run_id").is_null());
}

TEST_F(ChildWorkflowTest, AFailedChildFailsTheParentStepForGood) {
  std::atomic<int> checks{0};
  auto h = harness([&](StepContext&) -> StepOutcome {
    ++checks;
    return Fail{"score out of range", true};
  });
  h->start();
  const auto id = h->start_run("demo.parent");
  ASSERT_TRUE(h->wait_status(id, "failed")) << h->run(id).dump(2);
  const auto child = children(*h, id).at(0).at("id").get<std::int64_t>();
  EXPECT_EQ(h->run_status(child), "failed");
  const Json review = h->step(id, "review");
  EXPECT_EQ(review.at("status"), "failed");
  EXPECT_EQ(review.at("error"), "child workflow child run " + std::to_string(child) + " failed");
  EXPECT_THAT(h->run(id).at("error").get<std::string>(), HasSubstr("step review failed"));
  EXPECT_EQ(checks.load(), 1);  // the parent step did not retry the child
  EXPECT_EQ(children(*h, id).size(), 1u);
  EXPECT_EQ(h->step(id, "after").at("status"), "pending");
}

TEST_F(ChildWorkflowTest, CancellingTheParentCancelsItsChild) {
  auto h = harness([](StepContext&) -> StepOutcome { return WaitForSignal{"reviewed", {}}; });
  h->start();
  const auto id = h->start_run("demo.parent");
  const auto child = child_of(*h, id);
  ASSERT_TRUE(h->wait_status(child, "waiting")) << h->run(child).dump(2);
  EXPECT_EQ(h->run_status(id), "waiting");
  std::string message;
  ASSERT_EQ(h->engine().cancel(id, &message), runtime::Engine::CommandResult::kOk) << message;
  EXPECT_EQ(h->run_status(id), "cancelled");
  EXPECT_EQ(h->run_status(child), "cancelled");
  EXPECT_EQ(h->step(child, "check").at("status"), "cancelled");
  EXPECT_EQ(h->step(id, "review").at("status"), "cancelled");
}

// A child's end locks the child's run row first (step_commit locks the runs it finishes before
// anything else) and then, through its trigger, the parent's waiting step and run. A cancel of
// the parent racing it must take the runs in that same order, children first, or each holds
// what the other waits for and PostgreSQL aborts one of them.
TEST_F(ChildWorkflowTest, CancellingTheParentWhileTheChildEndsDoesNotDeadlock) {
  auto h = harness([](StepContext&) -> StepOutcome { return WaitForSignal{"reviewed", {}}; });
  h->start();
  const auto id = h->start_run("demo.parent");
  const auto child = child_of(*h, id);
  ASSERT_TRUE(h->wait_status(child, "waiting")) << h->run(child).dump(2);
  h->stop();  // nothing claims the parent's step between the child's end and the cancel

  // The child's ending transaction, as step_commit begins it: the child's row is locked.
  pqxx::connection ending(dsn());
  pqxx::work tx(ending);
  const int ending_pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
  tx.exec_params("SELECT 1 FROM workflow_run WHERE id = $1 FOR NO KEY UPDATE", child);

  std::optional<runtime::Engine::CommandResult> cancelled;
  std::string cancel_message;
  std::thread cancel([&] {
    try {
      cancelled = h->engine().cancel(id, &cancel_message);
    } catch (const std::exception& e) {
      cancel_message = e.what();
    }
  });
  // A failed assertion ends the child's transaction first, so the cancel can finish.
  std::shared_ptr<void> join_on_exit(nullptr, [&](void*) {
    try {
      tx.abort();
    } catch (const std::exception&) {
      // Committed already.
    }
    if (cancel.joinable()) cancel.join();
  });
  // The cancel waits for the child's row.
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT count(*) FROM pg_stat_activity WHERE " + std::to_string(ending_pid) +
                  " = ANY (pg_blocking_pids(pid))") != "0";
  }));
  // The child ends: its trigger wakes the parent's step.
  std::string ending_error;
  try {
    tx.exec_params(
        "UPDATE workflow_run SET status = 'failed', finished_at = now(), error = 'ended' "
        "WHERE id = $1",
        child);
    tx.commit();
  } catch (const std::exception& e) {
    ending_error = e.what();
  }
  cancel.join();
  EXPECT_EQ(ending_error, "");
  ASSERT_TRUE(cancelled.has_value()) << cancel_message;
  EXPECT_EQ(*cancelled, runtime::Engine::CommandResult::kOk) << cancel_message;
  // The child ended its own way before the cancel reached it; the parent is cancelled.
  EXPECT_EQ(h->run_status(child), "failed");
  EXPECT_EQ(h->run_status(id), "cancelled");
  EXPECT_EQ(h->step(id, "review").at("status"), "cancelled");
}

TEST_F(ChildWorkflowTest, CancellingTheChildFailsTheParentStep) {
  auto h = harness([](StepContext&) -> StepOutcome { return WaitForSignal{"reviewed", {}}; });
  h->start();
  const auto id = h->start_run("demo.parent");
  const auto child = child_of(*h, id);
  ASSERT_TRUE(h->wait_status(child, "waiting")) << h->run(child).dump(2);
  std::string message;
  ASSERT_EQ(h->engine().cancel(child, &message), runtime::Engine::CommandResult::kOk) << message;
  ASSERT_TRUE(h->wait_status(id, "failed")) << h->run(id).dump(2);
  EXPECT_EQ(h->step(id, "review").at("error"),
            "child workflow child run " + std::to_string(child) + " cancelled");
}

TEST_F(ChildWorkflowTest, ARestartWhileTheChildRunsStillCompletesTheParent) {
  // The first process (one worker, so it takes nothing else) hangs in the child's step, as
  // good as dead, until after the restart.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::atomic<bool> hung{false};
  runtime::EngineSettings one;
  one.workers = 1;
  one.batch_size = 1;
  auto first = harness(
      [&](StepContext& ctx) -> StepOutcome {
        hung = true;
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return released; });
        return scored(ctx);
      },
      one);
  auto release = [&] {
    {
      std::lock_guard lock(mu);
      released = true;
    }
    cv.notify_all();
  };
  // Declared after `first`, so gone before it: a failed assertion does not leave it hanging.
  std::shared_ptr<void> release_on_exit(nullptr, [&](void*) { release(); });
  first->start();
  const auto id = first->start_run("demo.parent");
  ASSERT_TRUE(wait_until([&] { return hung.load(); })) << first->run(id).dump(2);
  const auto child = child_of(*first, id);
  ASSERT_EQ(first->store().reclaim_all_running("restarted"), 1);
  auto second = harness(scored);
  second->start();
  ASSERT_TRUE(second->wait_status(id, "succeeded")) << second->run(id).dump(2);
  release();
  first->stop();
  EXPECT_EQ(second->run_status(child), "succeeded");
  EXPECT_EQ(children(*second, id).size(), 1u);
  EXPECT_EQ(second->step(id, "review").at("output").at("check"), Json({{"score", 4}}));
  EXPECT_EQ(after_calls_.load(), 1);
}

TEST_F(ChildWorkflowTest, AParentStepThatLostItsLeaseStartsNoSecondChild) {
  auto h = harness(scored);
  const auto id = h->start_run("demo.parent");
  // A worker claims the parent step and is lost before it starts the child.
  auto claimed = h->store().claim("lost-worker", 10, std::chrono::seconds(30));
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_EQ(claimed.at(0).step_key, "review");
  ASSERT_EQ(h->store().reclaim_all_running("restarted"), 1);
  h->start();
  ASSERT_TRUE(h->wait_status(id, "succeeded")) << h->run(id).dump(2);
  // The lost worker comes back and tries to start its child: nothing is written.
  store::EventInput ev;
  ev.type = "workflow.child";
  ev.body = {{"parent_run_id", id}};
  store::RunPlan plan;
  plan.workflow = "child";
  plan.workflow_version_id = h->run(children(*h, id).at(0).at("id").get<std::int64_t>())
                                 .at("version_id")
                                 .get<std::int64_t>();
  plan.steps.push_back(store::StepPlan{"check", "check", {}, 1, 30000, {}, {}});
  std::int64_t child = 0;
  auto batch = h->store().begin_batch();
  EXPECT_FALSE(batch->finish_child_started(
      claimed.at(0), "lost-worker", ev,
      [&](const store::EventInput&) { return std::vector<store::RunPlan>{plan}; }, child));
  batch->commit("lost-worker", 0, std::chrono::seconds(30), false);
  batch.reset();
  EXPECT_EQ(children(*h, id).size(), 1u);
  EXPECT_EQ(h->run_status(id), "succeeded");
}

TEST_F(ChildWorkflowTest, ARunWithAChildInFlightCannotMove) {
  auto h = harness([](StepContext&) -> StepOutcome { return WaitForSignal{"reviewed", {}}; });
  h->start();
  const auto id = h->start_run("demo.parent");
  const auto child = child_of(*h, id);
  ASSERT_TRUE(h->wait_status(child, "waiting")) << h->run(child).dump(2);
  store::Store::RunMove move;
  move.from_id = h->run(id).at("version_id").get<std::int64_t>();
  move.to_id = move.from_id + 1000;  // any other version: the refusal comes first
  move.to_label = "version 2";
  move.target = {{"review", {}}, {"after", {"review"}}};
  const auto plan = h->store().move_run(id, move);
  EXPECT_FALSE(plan.movable);
  EXPECT_EQ(plan.reason,
            "step review waits for its child workflow; move the run once the child has ended");
}

// A chain of children stops at 16 levels: the run 16 levels down fails the step that would
// start the 17th, saying why, and that failure ends every run above it. The loader refuses such
// a chain in one directory (config/workflow_files.cpp); versions published one by one can still
// build one, and the running engine stops it.
TEST_F(ChildWorkflowTest, AChainOfChildrenDeeperThanTheLimitFailsWhereItCrossesIt) {
  auto name = [](int i) { return "level-" + std::to_string(i); };
  std::vector<std::string> chain;
  for (int i = 0; i <= 17; ++i)
    chain.push_back(
        "name: " + name(i) + "\non: [{ event: demo." + name(i) + " }]\nsteps:\n" +
        (i < 17 ? "  call: { workflow: " + name(i + 1) + " }\n" : "  first: { handler: noop }\n"));
  EngineHarness h(dsn(), chain);
  h.start();
  const auto top = h.start_run("demo.level-0");
  ASSERT_TRUE(h.wait_status(top, "failed")) << h.run(top).dump(2);
  // Down the chain: level-i's run is i levels of children below the top one.
  std::int64_t id = top;
  for (int i = 1; i <= 16; ++i) {
    const Json kids = children(h, id);
    ASSERT_EQ(kids.size(), 1u) << "level " << i << ": " << h.run(id).dump(2);
    EXPECT_EQ(kids.at(0).at("workflow"), name(i));
    id = kids.at(0).at("id").get<std::int64_t>();
    EXPECT_EQ(h.run_status(id), "failed");
  }
  EXPECT_TRUE(children(h, id).empty()) << "a 17th level was started";
  EXPECT_EQ(h.step(id, "call").at("error"),
            "child workflow level-17 not started: 17 levels of child workflows exceed the limit "
            "of 16");
  EXPECT_EQ(h.step(top, "call").at("status"), "failed");
}

}  // namespace
}  // namespace chartflow::testing
