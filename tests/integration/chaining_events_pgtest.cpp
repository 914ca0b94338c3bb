// Chaining: a run's end (workflow.succeeded / workflow.failed) is an event written in the
// transaction that ends the run, and starts the workflows that listen for it.
#include <gtest/gtest.h>

#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

class ChainingTest : public PgTest {};

const std::string kFirst = R"(
name: first
on: [{ event: demo.first }]
steps:
  a: { handler: noop, input: { total: 42 } }
)";

const std::string kBreaks = R"(
name: breaks
on: [{ event: demo.breaks }]
steps:
  a: { handler: fail, input: { message: "no insurer", permanent: true } }
)";

const std::string kAfterFirst = R"(
name: after-first
on:
  - event: workflow.succeeded
    filter: { path: /event/workflow, equals: first }
steps:
  check: { handler: noop, when: { path: /event/output/a/total, equals: 42 } }
)";

const std::string kOnFailure = R"(
name: on-failure
on:
  - event: workflow.failed
    filter: { path: /event/workflow, equals: breaks }
steps:
  page: { handler: noop }
)";

// Runs of `workflow`, oldest first.
Json runs_of(EngineHarness& h, const std::string& workflow) {
  store::Store::RunFilter f;
  f.workflow = workflow;
  auto runs = h.store().list_runs(f).at("runs");
  std::reverse(runs.begin(), runs.end());
  return runs;
}

TEST_F(ChainingTest, SucceededRunStartsTheListeningWorkflowWithItsOutput) {
  EngineHarness h(dsn(), {kFirst, kAfterFirst, kBreaks, kOnFailure});
  h.start();
  const auto first = h.start_run("demo.first");
  ASSERT_TRUE(h.wait_status(first, "succeeded"));
  ASSERT_TRUE(wait_until([&] { return runs_of(h, "after-first").size() == 1; }));
  const auto chained = runs_of(h, "after-first")[0].at("id").get<std::int64_t>();
  ASSERT_TRUE(h.wait_status(chained, "succeeded"));
  // The step's condition read the first run's output from the event: it ran, not skipped.
  EXPECT_EQ(h.step(chained, "check").value("status", ""), "succeeded");

  const auto body = Json::parse(
      scalar("SELECT body FROM event WHERE type = 'workflow.succeeded' AND dedup_key = '" +
             std::to_string(first) + "'"));
  EXPECT_EQ(body.at("run_id"), first);
  EXPECT_EQ(body.at("workflow"), "first");
  EXPECT_EQ(body.at("status"), "succeeded");
  EXPECT_EQ(body.at("output"), Json({{"a", {{"total", 42}}}}));
  EXPECT_EQ(body.at("depth"), 1);
  // The chained run's own end is an event too (depth 2) and starts nothing: no one listens.
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT count(*) FROM event WHERE type = 'workflow.succeeded'") == "2";
  }));
  EXPECT_EQ(scalar("SELECT max((body->>'depth')::int) FROM event WHERE type = "
                   "'workflow.succeeded'"),
            "2");
  EXPECT_EQ(runs_of(h, "after-first").size(), 1U);
  EXPECT_TRUE(runs_of(h, "on-failure").empty());
}

// A listener for workflow.succeeded does not cost the batched finish: runs ended by one batch's
// commit (one worker, so the runs share batches) each emit their event in that commit.
TEST_F(ChainingTest, RunsEndedByOneBatchEachStartTheirListener) {
  runtime::EngineSettings settings;
  settings.workers = 1;
  EngineHarness h(dsn(), {kFirst, kAfterFirst}, nullptr, settings);
  std::vector<std::int64_t> firsts;
  for (int i = 0; i < 5; ++i) firsts.push_back(h.start_run("demo.first", {{"n", i}}));
  h.start();
  for (const auto id : firsts) ASSERT_TRUE(h.wait_status(id, "succeeded"));
  ASSERT_TRUE(wait_until([&] { return runs_of(h, "after-first").size() == 5; }));
  for (const auto& run : runs_of(h, "after-first"))
    ASSERT_TRUE(h.wait_status(run.at("id").get<std::int64_t>(), "succeeded"));
  // Steps finished together share their statement's finish time.
  EXPECT_LT(std::stoi(scalar("SELECT count(DISTINCT finished_at) FROM step_run WHERE run_id IN (" +
                             std::to_string(firsts[0]) + "," + std::to_string(firsts[1]) + "," +
                             std::to_string(firsts[2]) + "," + std::to_string(firsts[3]) + "," +
                             std::to_string(firsts[4]) + ")")),
            5);
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'workflow.succeeded' AND "
                   "body->>'workflow' = 'first'"),
            "5");
}

TEST_F(ChainingTest, FailedRunEmitsWorkflowFailedOncePerFailure) {
  EngineHarness h(dsn(), {kBreaks, kOnFailure});
  h.start();
  const auto broken = h.start_run("demo.breaks");
  ASSERT_TRUE(h.wait_status(broken, "failed"));
  ASSERT_TRUE(wait_until([&] { return runs_of(h, "on-failure").size() == 1; }));
  const auto body = Json::parse(
      scalar("SELECT body FROM event WHERE type = 'workflow.failed' ORDER BY id LIMIT 1"));
  EXPECT_EQ(body.at("run_id"), broken);
  EXPECT_EQ(body.at("workflow"), "breaks");
  EXPECT_NE(body.at("error").get<std::string>().find("no insurer"), std::string::npos);

  // An operator retry that fails again is a second failure: a second event, a second run.
  std::string msg;
  ASSERT_EQ(h.store().retry_run(broken, &msg), store::Store::CommandResult::kOk) << msg;
  ASSERT_TRUE(wait_until([&] { return runs_of(h, "on-failure").size() == 2; }));
  EXPECT_EQ(scalar("SELECT string_agg(dedup_key, ',' ORDER BY id) FROM event WHERE type = "
                   "'workflow.failed'"),
            std::to_string(broken) + "/1," + std::to_string(broken) + "/2");
}

TEST_F(ChainingTest, SelfTriggeringChainStopsAtTheDepthLimit) {
  EngineHarness h(dsn(), {R"(
name: loop
on:
  - event: demo.loop
  - event: workflow.succeeded
    filter: { path: /event/workflow, equals: loop }
steps:
  a: { handler: noop }
)"});
  h.start();
  h.start_run("demo.loop");
  ASSERT_TRUE(wait_until([&] {
    return scalar(
               "SELECT count(*) FROM log_record WHERE message LIKE 'run-end event not "
               "emitted%'") == "1";
  }));
  // The first run plus one per run-end event up to the limit.
  EXPECT_EQ(runs_of(h, "loop").size(), static_cast<std::size_t>(store::kMaxChainDepth) + 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run WHERE status <> 'succeeded'"), "0");
}

TEST_F(ChainingTest, NoListenerStoresNoRunEndEvent) {
  EngineHarness h(dsn(), {kFirst});
  h.start();
  const auto first = h.start_run("demo.first");
  ASSERT_TRUE(h.wait_status(first, "succeeded"));
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type LIKE 'workflow.%'"), "0");
}

}  // namespace
}  // namespace chartflow::testing
