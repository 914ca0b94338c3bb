// engine/signals.hpp's wake_run is called by steps in the middle of a worker's batch (a FHIR
// topic published by a review wakes each subscription's deliverer). It must never wait for the
// woken run's row: two batches waking each other's runs in opposite orders deadlocked, and a
// publisher queued behind whatever held the run. A held row is skipped ("busy"); a free one is
// woken as before.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "engine/signals.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow {
namespace {

using chartflow::testing::EngineHarness;

const char* const kWorkflow = R"(
name: sleeper
on: [{ event: demo.sleeper }]
steps:
  idle: { handler: wait_signal, input: { signal: wake } }
)";

class WakeRunTest : public chartflow::testing::PgTest {};

TEST_F(WakeRunTest, AWakeNeverWaitsForARowAnotherTransactionHolds) {
  EngineHarness h(dsn(), {kWorkflow});
  h.start();
  const auto id = h.start_run("demo.sleeper");
  ASSERT_TRUE(h.wait_status(id, "waiting")) << h.run(id).dump();

  // Another transaction holds the run's row (a batch committing it, another publisher).
  pqxx::connection holder(dsn());
  pqxx::work held(holder);
  held.exec_params("SELECT 1 FROM workflow_run WHERE id = $1 FOR UPDATE", id);

  std::string outcome;
  store::Store waker(dsn());
  waker.with_sql([&](Sql& sql) {
    // Waiting for the row would end in this error rather than hang the test.
    sql.query("SET LOCAL lock_timeout = '3s'");
    outcome = wake_run(sql, id, "wake");
  });
  EXPECT_EQ(outcome, "busy");
  held.commit();
  EXPECT_EQ(h.step(id, "idle").value("status", ""), "waiting");

  // Free again, the row is taken and the run woken.
  waker.with_sql([&](Sql& sql) { outcome = wake_run(sql, id, "wake"); });
  EXPECT_EQ(outcome, "delivered");
  EXPECT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
}

}  // namespace
}  // namespace chartflow
