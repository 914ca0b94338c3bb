// A step's `concurrency` limit holds across every chartflow process (docs/workflows.md), not only
// among one process's workers: two real `chartflow worker` processes on one database run a limited
// step, and a handler outside both of them sees every start and end.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/handler_setup.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// An external handler that keeps the attempts running right now, of every process, in one file:
// each start and end rewrites it under an exclusive lock and appends what it then holds to
// events.log. An entry is [worker process pid, run id]; the worker process is the handler process's
// parent.
constexpr const char* kRecorder = R"(import fcntl, json, os, sys, time

state = sys.argv[1]


def change(entry, add):
    with open(os.path.join(state, "running.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(state, "running.json")
        running = []
        if os.path.exists(path):
            with open(path) as f:
                running = json.load(f)
        if add:
            running.append(entry)
        else:
            running.remove(entry)
        with open(path + ".tmp", "w") as f:
            json.dump(running, f)
        os.replace(path + ".tmp", path)
        with open(os.path.join(state, "events.log"), "a") as log:
            log.write(json.dumps({"event": "start" if add else "end", "running": running}) + "\n")


for line in sys.stdin:
    request = json.loads(line)
    entry = [os.getppid(), request["context"]["run_id"]]
    change(entry, True)
    time.sleep(request["input"]["ms"] / 1000.0)
    change(entry, False)
    print(json.dumps({"id": request["id"], "output": {}}), flush=True)
)";

fs::path log_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" /
         (std::string(info->name()) + "-" + name + ".log");
}

class ConcurrencyLimitTest : public PgTest {
 protected:
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }
};

TEST_F(ConcurrencyLimitTest, HoldsAcrossTwoWorkerProcesses) {
  constexpr int kLimit = 2;
  constexpr int kRuns = 12;
  TempDir state("cf-limit");
  const fs::path recorder = state.path() / "recorder.py";
  std::ofstream(recorder) << kRecorder;
  const std::string workflow =
      "name: limited\non: [{ event: demo.limited }]\nsteps:\n  s:\n" +
      std::string("    handler: { exec: [python3, ") + recorder.string() + ", " +
      state.path().string() + "] }\n" +
      "    input: { ms: 300 }\n    concurrency: " + std::to_string(kLimit) + "\n";
  runtime::EngineSettings settings;
  settings.workers = 0;  // this process only ingests
  // External handlers known here only so the workflow validates: this process runs no step.
  auto handlers = std::make_shared<HandlerRegistry>();
  runtime::register_external_handlers(*handlers, state.path());
  EngineHarness harness(dsn(), {workflow}, handlers, settings);

  // Handler processes run in the workflows folder, which must exist wherever the test runs.
  auto worker = [&](const std::string& name, int threads) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{CHARTFLOW_BINARY, "worker", "--database-url", dsn(), "--workflows",
                                 state.path().string(), "--concurrency", std::to_string(threads),
                                 "--poll-ms", "200"},
        log_path(name));
  };
  auto started = [](ChildProcess& w) {
    return w.log().find("worker_started") != std::string::npos;
  };
  // The first worker has one thread, so it holds one of the two places; a finished step's commit
  // claims the next one in its own transaction, so it keeps that place. The second has three
  // threads: alone it would run three at once, and only the limit it shares with the first keeps it
  // to the one place left. It is stopped until the first holds its place (else it could take both
  // and keep them), then competes at once rather than after a slow sanitized start.
  auto w1 = worker("worker1", 1);
  auto w2 = worker("worker2", 3);
  ASSERT_TRUE(wait_until([&] { return started(*w1) && started(*w2); }, 30s))
      << "worker1:\n"
      << w1->log() << "\nworker2:\n"
      << w2->log();
  w2->signal(SIGSTOP);
  for (int i = 0; i < kRuns; ++i) harness.start_run("demo.limited", Json{{"n", i}});
  const bool first_holds = wait_until(
      [&] {
        return count(
                   "SELECT count(*) FROM step_run WHERE status = 'running' AND lease_owner LIKE "
                   "'%:" +
                   std::to_string(w1->pid()) + ":%'") > 0;
      },
      30s);
  w2->signal(SIGCONT);
  ASSERT_TRUE(first_holds) << w1->log();
  ASSERT_TRUE(wait_until(
      [&] {
        return count("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'") == kRuns;
      },
      60s))
      << scalar("SELECT string_agg(id || ':' || status, ' ') FROM workflow_run") << "\nworker1:\n"
      << w1->log() << "\nworker2:\n"
      << w2->log();

  std::size_t most_running = 0;
  std::size_t most_processes = 0;
  std::set<int> processes;
  int starts = 0;
  std::ifstream events(state.path() / "events.log");
  for (std::string line; std::getline(events, line);) {
    const Json e = Json::parse(line);
    if (e["event"] != "start") continue;
    ++starts;
    std::set<int> at_once;
    for (const auto& entry : e["running"]) at_once.insert(entry[0].get<int>());
    processes.insert(at_once.begin(), at_once.end());
    most_running = std::max(most_running, e["running"].size());
    most_processes = std::max(most_processes, at_once.size());
  }
  EXPECT_EQ(starts, kRuns) << "each run's step should have started its handler once";
  EXPECT_LE(most_running, static_cast<std::size_t>(kLimit))
      << "more attempts ran at once than the step's concurrency limit";
  EXPECT_EQ(most_running, static_cast<std::size_t>(kLimit))
      << "the runs never competed for the limit, so it was not tested";
  EXPECT_EQ(processes.size(), 2U) << "both worker processes should have run the step";
  EXPECT_EQ(most_processes, 2U)
      << "the two processes never ran attempts at the same time: the limit was not shared";
  EXPECT_EQ(
      count("SELECT count(DISTINCT worker) FROM run_history WHERE step = 's' AND type = 'started'"),
      2);
  EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE type IN ('failed', 'retried', "
                  "'timed_out', 'lease_expired')"),
            0);
  for (auto* w : {w1.get(), w2.get()}) {
    w->signal(SIGTERM);
    EXPECT_EQ(w->wait_exit(15s), std::optional<int>(0)) << w->log();
  }
}

}  // namespace
}  // namespace chartflow::testing
