// Issue #15 item 2: a crash, a restart or a lost connection never costs a step an attempt. Each
// test is a finding of the fault-injection run, against a real PostgreSQL.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

class LostAttemptsTest : public PgTest {
 protected:
  // The step row's attempt and max_attempts, as "attempt/max".
  std::string attempts(std::int64_t run_id, const std::string& step) {
    return scalar("SELECT attempt || '/' || max_attempts FROM step_run WHERE run_id = " +
                  std::to_string(run_id) + " AND step_key = '" + step + "'");
  }
};

// Fails its first call, then succeeds: one real failure, which must still have an attempt left.
struct FailsOnce : Handler {
  std::atomic<int> calls{0};
  StepOutcome run(StepContext&) override {
    if (++calls == 1) return Fail{"first call fails by design"};
    return Completed{};
  }
};

// Finding: after 20 restarts a step stood at attempt 21 of 8 and its first real failure failed
// the run. reclaim_all_running (the embedded server's restart) must give the attempt back, as
// lease expiry does.
TEST_F(LostAttemptsTest, RestartsOfTheEmbeddedServerSpendNoAttempt) {
  auto extra = std::make_shared<HandlerRegistry>();
  auto fails_once = std::make_shared<FailsOnce>();
  extra->add("fails_once", fails_once);
  EngineHarness h(dsn(), {R"(
name: restarts
on: [{ event: demo.restarts }]
steps:
  s: { handler: fails_once, retry: { max_attempts: 2, initial: 10ms } }
)"},
                  extra);
  const auto id = h.start_run("demo.restarts");
  // Five crashes, each while the step was running: claimed by a process that then died, and
  // taken back at the next start.
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(
        h.store().claim("crashed-" + std::to_string(i), 10, std::chrono::minutes(5), true).size(),
        1U);
    ASSERT_EQ(h.store().reclaim_all_running("embedded server restarted"), 1);
  }
  EXPECT_EQ(attempts(id, "s"), "5/7");
  h.start();
  ASSERT_TRUE(h.wait_status(id, ""));
  EXPECT_EQ(h.run_status(id), "succeeded");
  EXPECT_EQ(fails_once->calls.load(), 2);
}

// Finding: the heartbeat renewed every running step of the instance, so a step the process had
// claimed but was no longer running (its batch lost on a dropped connection) kept its lease
// while anything else was in flight, and came back only through its timeout, as a failed
// attempt. Only the steps actually in flight are renewed; the other comes back when its lease
// lapses, at no cost.
TEST_F(LostAttemptsTest, TheHeartbeatRenewsOnlyStepsInFlight) {
  runtime::EngineSettings settings;
  settings.instance_id = "engine-heartbeat";
  settings.lease = std::chrono::seconds(1);
  settings.workers = 2;
  EngineHarness h(dsn(),
                  {R"(
name: long
on: [{ event: demo.long }]
steps:
  long: { handler: work, input: { ms: 8000 }, timeout: 60s }
)",
                   R"(
name: limbo
on: [{ event: demo.limbo }]
steps:
  s: { handler: noop, timeout: 60s, retry: { max_attempts: 1 } }
)"},
                  nullptr, settings);
  // A step this instance claimed and then lost track of.
  const auto limbo = h.start_run("demo.limbo");
  ASSERT_EQ(h.store().claim("engine-heartbeat", 10, std::chrono::seconds(1), true).size(), 1U);
  const auto long_run = h.start_run("demo.long");
  h.start();
  ASSERT_TRUE(h.wait_status(limbo, "succeeded", std::chrono::seconds(6)))
      << "the lost step was kept alive by the heartbeat of another step";
  EXPECT_EQ(h.run_status(long_run), "running");  // still in flight, still renewed
  EXPECT_EQ(attempts(limbo, "s"), "2/2");        // the lost attempt was given back
  ASSERT_TRUE(h.wait_status(long_run, "succeeded", std::chrono::seconds(20)));
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE run_id = " + std::to_string(long_run) +
                   " AND type IN ('lease_expired', 'timed_out')"),
            "0");
}

// Finding: after a failover, steps of a batch whose connection broke twice (the batch, then the
// step-by-step retry) were dropped while still claimed, and released only by their lease or
// timeout. They are released at once, at no cost.
TEST_F(LostAttemptsTest, AStepWhoseRetryLostItsConnectionIsReleasedAtOnce) {
  auto extra = std::make_shared<HandlerRegistry>();
  struct Ledger : Handler {
    StepOutcome run(StepContext& ctx) override {
      ctx.sql().query("INSERT INTO test_ledger (key) VALUES ($1)", {ctx.idempotency_key()});
      return Completed{};
    }
  };
  extra->add("ledger", std::make_shared<Ledger>());
  scalar("CREATE TABLE test_ledger (key text PRIMARY KEY)");
  // The first two commits lose their connection (a sequence is not rolled back).
  scalar("CREATE SEQUENCE commit_failures");
  scalar(
      "CREATE FUNCTION drop_connection() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF "
      "nextval('commit_failures') <= 2 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END "
      "IF; RETURN NULL; END $$");
  scalar(
      "CREATE CONSTRAINT TRIGGER drop_connection AFTER INSERT ON test_ledger DEFERRABLE "
      "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION drop_connection()");
  runtime::EngineSettings settings;
  settings.workers = 1;
  settings.lease = std::chrono::seconds(60);  // far beyond the wait below
  EngineHarness h(dsn(), {R"(
name: billing
on: [{ event: demo.bill }]
steps:
  bill: { handler: ledger, timeout: 60s, retry: { max_attempts: 2 } }
)"},
                  extra, settings);
  const auto id = h.start_run("demo.bill");
  h.start();
  ASSERT_TRUE(h.wait_status(id, "succeeded", std::chrono::seconds(15)))
      << "the dropped step waited for its lease";
  EXPECT_GE(std::stoi(scalar("SELECT last_value FROM commit_failures")), 3);
  EXPECT_EQ(scalar("SELECT count(*) FROM test_ledger"), "1");
  EXPECT_EQ(attempts(id, "bill"), "2/3");  // the dropped attempt was given back
}

// Finding (HA and long fault runs): a step whose timeout passed while the database was frozen
// spent an attempt, though the handler was not slow: its worker could not commit and its heartbeat
// could not renew the lease. A deadline that passed after the lease lapsed is the lost worker's,
// not the step's; a deadline passed under a live lease is still a timeout and costs one.
TEST_F(LostAttemptsTest, ATimeoutPassedWhileTheLeaseLapsedSpendsNoAttempt) {
  EngineHarness h(dsn(), {R"(
name: frozen
on: [{ event: demo.frozen }]
steps:
  s: { handler: noop, timeout: 1s, retry: { max_attempts: 1 } }
)"});
  const auto frozen = h.start_run("demo.frozen");
  const auto slow = h.start_run("demo.frozen");
  ASSERT_EQ(h.store().claim("frozen-worker", 10, std::chrono::seconds(1), true).size(), 2U);
  // Both deadlines pass; only the slow step's worker is still renewing its lease.
  scalar(
      "UPDATE step_run SET deadline_at = now() - interval '1 second', lease_expires_at = "
      "CASE WHEN run_id = " +
      std::to_string(frozen) +
      " THEN now() - interval '1 second' ELSE now() + interval "
      "'1 hour' END");
  std::map<std::int64_t, bool> timed_out;
  for (const auto& e : h.store().expired_steps(10)) timed_out[e.run_id] = e.timed_out;
  ASSERT_EQ(timed_out.size(), 2U);
  EXPECT_FALSE(timed_out[frozen]) << "a lapsed lease was charged as the step's timeout";
  EXPECT_TRUE(timed_out[slow]);
  h.start();
  ASSERT_TRUE(h.wait_status(frozen, "succeeded", std::chrono::seconds(10)));
  EXPECT_EQ(attempts(frozen, "s"), "2/2");
  ASSERT_TRUE(h.wait_status(slow, "failed", std::chrono::seconds(10)));
}

}  // namespace
}  // namespace chartflow::testing
