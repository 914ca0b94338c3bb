// Many workers on one database: two engines in this process, then two real `chartflow worker`
// processes, claim side by side; every step runs exactly once and never twice at the same time.
// Also: SIGTERM drains a worker process without stranding its steps.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/support/child_process.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string chain_yaml(const std::string& name, const std::string& event, int steps,
                       const std::string& handler, const std::string& input = "") {
  std::string y = "name: " + name + "\non:\n  - event: " + event + "\nsteps:\n";
  for (int i = 1; i <= steps; ++i) {
    y += "  s" + std::to_string(i) + ": { handler: " + handler;
    if (i > 1) y += ", needs: [s" + std::to_string(i - 1) + "]";
    if (!input.empty()) y += ", input: " + input;
    y += " }\n";
  }
  return y;
}

// A no-op that records, per (run, step), how often it ran and whether two executions ever
// overlapped. Shared by every worker thread of both engines.
class CountingHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    const auto key = std::make_pair(ctx.run_id(), ctx.step());
    {
      std::lock_guard lock(mu_);
      if (++active_[key] > 1) ++overlaps_;
      ++executions_[key];
      ++total_;
    }
    // Widen the window in which an overlapping execution would be seen.
    std::this_thread::sleep_for(200us);
    {
      std::lock_guard lock(mu_);
      --active_[key];
    }
    return Completed{ctx.input()};
  }

  int total() const {
    std::lock_guard lock(mu_);
    return total_;
  }
  int overlaps() const {
    std::lock_guard lock(mu_);
    return overlaps_;
  }
  std::map<std::pair<std::int64_t, std::string>, int> executions() const {
    std::lock_guard lock(mu_);
    return executions_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::int64_t, std::string>, int> active_;
  std::map<std::pair<std::int64_t, std::string>, int> executions_;
  int overlaps_ = 0;
  int total_ = 0;
};

fs::path log_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" /
         (std::string(info->name()) + "-" + name + ".log");
}

class MultiWorkerTest : public PgTest {
 protected:
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }

  // The per-step bookkeeping every scenario ends with: each step started and succeeded exactly
  // once (a step run twice shows up as a second 'started'), in its first attempt.
  void expect_each_step_ran_once(int runs, int steps_per_run) {
    const int steps = runs * steps_per_run;
    EXPECT_EQ(count("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'"), runs);
    EXPECT_EQ(count("SELECT count(*) FROM step_run"), steps);
    EXPECT_EQ(count("SELECT count(*) FROM step_run WHERE status = 'succeeded' AND attempt = 1"),
              steps);
    for (const std::string type : {"started", "succeeded"}) {
      EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE step IS NOT NULL AND type = '" +
                      type + "'"),
                steps)
          << type;
      EXPECT_EQ(count("SELECT count(*) FROM (SELECT run_id, step FROM run_history WHERE step IS "
                      "NOT NULL AND type = '" +
                      type + "' GROUP BY run_id, step HAVING count(*) <> 1) x"),
                0)
          << "steps with more or fewer than one '" << type << "' history row";
    }
    EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE type IN ('lease_expired', "
                    "'timed_out', 'retried', 'failed')"),
              0);
  }

  bool wait_all_succeeded(int runs, std::chrono::milliseconds timeout) {
    return wait_until(
        [&] {
          return count("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'") == runs;
        },
        timeout);
  }
};

TEST_F(MultiWorkerTest, TwoEnginesRunEveryStepExactlyOnce) {
  constexpr int kRuns = 300;
  constexpr int kSteps = 5;
  auto counting = std::make_shared<CountingHandler>();
  auto handlers = std::make_shared<HandlerRegistry>();
  handlers->add("count", counting);
  const std::string wf = chain_yaml("chain", "demo.chain", kSteps, "count");

  runtime::EngineSettings a_settings;
  a_settings.instance_id = "engine-a";
  a_settings.workers = 4;
  runtime::EngineSettings b_settings = a_settings;
  b_settings.instance_id = "engine-b";
  EngineHarness a(dsn(), {wf}, handlers, a_settings);
  EngineHarness b(dsn(), {wf}, handlers, b_settings);
  a.start();
  b.start();
  for (int i = 0; i < kRuns; ++i) {
    EngineHarness& via = i % 2 == 0 ? a : b;
    via.start_run("demo.chain", Json{{"n", i}});
  }
  ASSERT_TRUE(wait_all_succeeded(kRuns, 60s))
      << count("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'") << " of " << kRuns
      << " succeeded";
  a.stop();
  b.stop();

  EXPECT_EQ(counting->overlaps(), 0) << "a step ran twice at the same time";
  EXPECT_EQ(counting->total(), kRuns * kSteps);
  const auto executions = counting->executions();
  EXPECT_EQ(executions.size(), static_cast<std::size_t>(kRuns * kSteps));
  for (const auto& [key, n] : executions)
    EXPECT_EQ(n, 1) << "run " << key.first << " step " << key.second << " ran " << n << " times";
  expect_each_step_ran_once(kRuns, kSteps);
  // Both engines took part.
  EXPECT_EQ(count("SELECT count(DISTINCT worker) FROM run_history WHERE type = 'started'"), 2);
}

TEST_F(MultiWorkerTest, TwoWorkerProcessesShareOneDatabase) {
  constexpr int kRuns = 200;
  constexpr int kSteps = 5;
  runtime::EngineSettings settings;
  settings.workers = 0;  // this process only ingests
  EngineHarness harness(dsn(), {chain_yaml("chain", "demo.chain", kSteps, "noop")}, nullptr,
                        settings);

  auto worker = [&](const std::string& name) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{CHARTFLOW_BINARY, "worker", "--database-url", dsn(),
                                 "--concurrency", "4", "--poll-ms", "200"},
        log_path(name));
  };
  auto w1 = worker("worker1");
  auto w2 = worker("worker2");
  // Both claim only once both are up: a sanitized worker starting slowly on a busy machine
  // would otherwise find every run done by the other.
  const auto up = std::chrono::steady_clock::now() + 30s;
  while ((w1->log().find("worker_started") == std::string::npos ||
          w2->log().find("worker_started") == std::string::npos) &&
         std::chrono::steady_clock::now() < up)
    std::this_thread::sleep_for(50ms);
  for (int i = 0; i < kRuns; ++i) harness.start_run("demo.chain", Json{{"n", i}});
  ASSERT_TRUE(wait_all_succeeded(kRuns, 60s))
      << count("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'") << " of " << kRuns
      << " succeeded\nworker1:\n"
      << w1->log() << "\nworker2:\n"
      << w2->log();

  expect_each_step_ran_once(kRuns, kSteps);
  EXPECT_EQ(count("SELECT count(DISTINCT worker) FROM run_history WHERE type = 'started'"), 2)
      << "both worker processes should have claimed steps";
  for (auto* w : {w1.get(), w2.get()}) {
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait_exit(10s), std::optional<int>(0)) << w->log();
  }
}

TEST_F(MultiWorkerTest, SigtermDrainsAWorkerProcess) {
  constexpr int kRuns = 6;
  constexpr int kSteps = 2;
  runtime::EngineSettings settings;
  settings.workers = 0;
  EngineHarness harness(dsn(), {chain_yaml("slow", "demo.slow", kSteps, "work", "{ ms: 500 }")},
                        nullptr, settings);
  // Everything is queued before the first worker starts, so it claims several 500 ms steps at
  // once and is still busy with them when SIGTERM arrives. The lease is shorter than that work:
  // a draining worker that stopped renewing its leases would lose its steps to the other one.
  for (int i = 0; i < kRuns; ++i) harness.start_run("demo.slow", Json{{"n", i}});
  auto worker = [&](const std::string& name) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{CHARTFLOW_BINARY, "worker", "--database-url", dsn(),
                                 "--concurrency", "4", "--poll-ms", "200", "--lease-ms", "1500"},
        log_path(name));
  };
  auto draining = worker("draining");
  const std::string owner_like = "'%:" + std::to_string(draining->pid()) + ":%'";
  const std::string running_sql =
      "SELECT count(*) FROM step_run WHERE status = 'running' AND lease_owner LIKE " + owner_like;
  ASSERT_TRUE(wait_until([&] { return count(running_sql) > 0; }, 20s))
      << "the worker never ran a step\n"
      << draining->log();
  const auto signalled = std::chrono::steady_clock::now();
  draining->signal(SIGTERM);
  auto other = worker("other");
  // While it drains, its leases must stay alive (heartbeats go on until its last step is done);
  // a lapsed lease lets the other worker's rescuer hand the step out a second time.
  int lapsed = 0;
  const auto code = [&]() -> std::optional<int> {
    wait_until(
        [&] {
          if (!draining->running()) return true;
          lapsed = std::max(lapsed, count(running_sql + " AND lease_expires_at < now()"));
          return false;
        },
        15s);
    return draining->wait_exit(0s);
  }();
  const auto drain_time = std::chrono::steady_clock::now() - signalled;
  ASSERT_TRUE(code.has_value()) << "worker did not exit after SIGTERM\n" << draining->log();
  EXPECT_EQ(*code, 0) << draining->log();
  EXPECT_LT(drain_time, 10s);
  EXPECT_EQ(lapsed, 0) << "the draining worker let the lease of steps it was still running lapse";
  // Whatever it had claimed is finished or handed back: nothing waits for its lease to expire.
  EXPECT_EQ(count(running_sql), 0);

  ASSERT_TRUE(wait_all_succeeded(kRuns, 30s)) << other->log();
  EXPECT_GT(count("SELECT count(*) FROM run_history WHERE type = 'succeeded' AND worker LIKE " +
                  owner_like),
            0)
      << "the draining worker should finish what it was running";
  EXPECT_GT(count("SELECT count(*) FROM run_history WHERE type = 'succeeded' AND worker NOT "
                  "LIKE " +
                  owner_like),
            0)
      << "the other worker should finish the rest";
  expect_each_step_ran_once(kRuns, kSteps);
  other->signal(SIGTERM);
  EXPECT_EQ(other->wait_exit(15s), std::optional<int>(0)) << other->log();
}

}  // namespace
}  // namespace chartflow::testing
