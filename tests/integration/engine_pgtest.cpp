// Engine semantics against a real PostgreSQL: DAG order, skips, retries, timeouts, waits across
// restarts, dedup, version pinning, cancel/retry, concurrency limits and exactly-once writes.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "handlers/chart_migrations.hpp"
#include "store/migrations.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kDiamond =
    read_file(std::string(CHARTFLOW_SOURCE_DIR) + "/workflows/diamond.yaml");

// Index of the first history entry of `type` for `step` (or -1).
int history_index(const Json& run, const std::string& type, const std::string& step) {
  const auto& h = run.at("history");
  for (std::size_t i = 0; i < h.size(); ++i)
    if (h[i].value("type", "") == type && h[i].at("step").is_string() && h[i].at("step") == step)
      return static_cast<int>(i);
  return -1;
}

int history_count(const Json& run, const std::string& type, const std::string& step) {
  int n = 0;
  for (const auto& e : run.at("history"))
    if (e.value("type", "") == type && e.at("step").is_string() && e.at("step") == step) ++n;
  return n;
}

class EngineTest : public PgTest {};

// One step whose handler `ledger` writes through the engine's transaction.
const std::string kLedgerWorkflow = R"(
name: billing
on: [{ event: demo.bill }]
steps:
  bill: { handler: ledger }
)";

TEST_F(EngineTest, DiamondRunsInDependencyOrderAndSkips) {
  EngineHarness h(dsn(), {kDiamond});
  h.start();
  const auto run_id = h.start_run("demo.diamond", {{"skip_e", false}});
  ASSERT_TRUE(h.wait_status(run_id, "succeeded"));
  auto run = h.run(run_id);
  for (const auto& s : run.at("steps")) EXPECT_EQ(s.value("status", ""), "succeeded") << s.dump();
  // d (fan-in) starts only after both b and c succeeded; b and c (fan-out) after a.
  EXPECT_LT(history_index(run, "succeeded", "a"), history_index(run, "started", "b"));
  EXPECT_LT(history_index(run, "succeeded", "a"), history_index(run, "started", "c"));
  EXPECT_LT(history_index(run, "succeeded", "b"), history_index(run, "started", "d"));
  EXPECT_LT(history_index(run, "succeeded", "c"), history_index(run, "started", "d"));
  // b waited 300 ms on a durable timer.
  EXPECT_GE(history_count(run, "waiting", "b"), 1);

  const auto skipped = h.start_run("demo.diamond", {{"skip_e", true}});
  ASSERT_TRUE(h.wait_status(skipped, "succeeded"));
  EXPECT_EQ(h.step(skipped, "e").value("status", ""), "skipped");
  EXPECT_EQ(h.step(skipped, "d").value("status", ""), "succeeded");
  // A missing path does not equal false: e is skipped too.
  const auto missing = h.start_run("demo.diamond", Json::object());
  ASSERT_TRUE(h.wait_status(missing, "succeeded"));
  EXPECT_EQ(h.step(missing, "e").value("status", ""), "skipped");
}

TEST_F(EngineTest, StepsAfterASkippedStepStillRunAndSeeOutputs) {
  EngineHarness h(dsn(), {R"(
name: chain
on: [{ event: demo.chain }]
steps:
  a: { handler: noop, input: { value: 7 } }
  b: { handler: noop, needs: [a], when: { path: /steps/a/value, gt: 10 } }
  c: { handler: noop, needs: [b], when: { path: /steps/a/value, equals: 7 } }
)"});
  h.start();
  const auto id = h.start_run("demo.chain");
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  EXPECT_EQ(h.step(id, "b").value("status", ""), "skipped");
  EXPECT_EQ(h.step(id, "c").value("status", ""), "succeeded");
}

// Fails its first `failures` attempts (with Retry{after} when `retry_after_ms` is set) and
// records when each attempt began, so the test measures the real gaps between attempts rather
// than the delays the engine says it chose.
struct TimedFlaky : Handler {
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> started;
  StepOutcome run(StepContext& ctx) override {
    {
      std::lock_guard lock(mu);
      started.push_back(std::chrono::steady_clock::now());
    }
    if (ctx.attempt() <= ctx.input().value("failures", 0)) {
      const auto after = ctx.input().value("retry_after_ms", 0);
      if (after > 0) return Retry{"not yet", Millis(after)};
      return Fail{"fails by design"};
    }
    return Completed{{{"attempt", ctx.attempt()}}};
  }
  std::vector<std::int64_t> gaps_ms() {
    std::lock_guard lock(mu);
    std::vector<std::int64_t> gaps;
    for (std::size_t i = 1; i < started.size(); ++i)
      gaps.push_back(std::chrono::duration_cast<Millis>(started[i] - started[i - 1]).count());
    return gaps;
  }
};

TEST_F(EngineTest, FailingStepRetriesWithBackoffThenSucceeds) {
  auto extra = std::make_shared<HandlerRegistry>();
  auto flaky = std::make_shared<TimedFlaky>();
  extra->add("timed_flaky", flaky);
  EngineHarness h(dsn(), {R"(
name: flaky
on: [{ event: demo.flaky }]
steps:
  a: { handler: timed_flaky, input: { failures: 2 }, retry: { max_attempts: 3, initial: 300ms, multiplier: 2, jitter: 0 } }
  b: { handler: noop, needs: [a] }
)"},
                  extra);
  h.start();
  const auto id = h.start_run("demo.flaky");
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  auto a = h.step(id, "a");
  EXPECT_EQ(a.value("attempts", 0), 3);
  EXPECT_EQ(a.at("output").value("attempt", 0), 3);
  std::vector<std::int64_t> delays;
  const Json run = h.run(id);
  for (const auto& e : run.at("history"))
    if (e.value("type", "") == "retried") delays.push_back(e.at("detail").value("delay_ms", -1));
  ASSERT_EQ(delays.size(), 2u);
  EXPECT_EQ(delays[0], 300);  // initial
  EXPECT_EQ(delays[1], 600);  // initial * multiplier
  // The attempts really were that far apart: never earlier (the promise), and not stuck
  // behind a poll interval far longer than the delay (a loose bound for a loaded machine).
  const auto gaps = flaky->gaps_ms();
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_GE(gaps[0], 300);
  EXPECT_GE(gaps[1], 600);
  EXPECT_LT(gaps[0], 300 + 5000);
  EXPECT_LT(gaps[1], 600 + 5000);
  EXPECT_GT(gaps[1], gaps[0]) << "the second delay doubles the first";
}

TEST_F(EngineTest, RetryAfterFromTheHandlerReplacesTheBackoff) {
  auto extra = std::make_shared<HandlerRegistry>();
  auto flaky = std::make_shared<TimedFlaky>();
  extra->add("timed_flaky", flaky);
  EngineHarness h(dsn(), {R"(
name: later
on: [{ event: demo.later }]
steps:
  a: { handler: timed_flaky, input: { failures: 1, retry_after_ms: 900 }, retry: { max_attempts: 2, initial: 10ms, jitter: 0 } }
)"},
                  extra);
  h.start();
  const auto id = h.start_run("demo.later");
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  const auto gaps = flaky->gaps_ms();
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_GE(gaps[0], 900) << "Retry{after} must hold the step for the time the handler asked";
  EXPECT_LT(gaps[0], 900 + 5000);
}

TEST_F(EngineTest, ExhaustedRetriesFailTheRunAndKeepEveryError) {
  EngineHarness h(dsn(), {R"(
name: doomed
on: [{ event: demo.doomed }]
steps:
  a: { handler: fail, input: { message: "insurer said no" }, retry: { max_attempts: 2, initial: 50ms } }
  b: { handler: noop, needs: [a] }
)"});
  h.start();
  const auto id = h.start_run("demo.doomed");
  ASSERT_TRUE(h.wait_status(id, "failed"));
  auto run = h.run(id);
  EXPECT_EQ(h.step(id, "a").value("status", ""), "failed");
  EXPECT_EQ(h.step(id, "a").value("error", ""), "insurer said no");
  EXPECT_EQ(h.step(id, "b").value("status", ""), "pending");  // dependents never run
  EXPECT_EQ(history_count(run, "retried", "a"), 1);
  EXPECT_EQ(history_count(run, "failed", "a"), 1);
  EXPECT_NE(run.value("error", "").find("insurer said no"), std::string::npos);
  // The failed attempts were logged at error level.
  store::Store::LogFilter f;
  f.min_level = 3;
  f.run_id = id;
  const Json logs = h.store().query_logs(f).at("logs");
  EXPECT_GE(logs.size(), 2u);
}

TEST_F(EngineTest, RetryOfAFailedRunRerunsOnlyFailedSteps) {
  auto extra = std::make_shared<HandlerRegistry>();
  std::atomic<bool> healthy{false};
  std::atomic<int> first_calls{0};
  struct Gate : Handler {
    std::atomic<bool>& ok;
    explicit Gate(std::atomic<bool>& o) : ok(o) {}
    StepOutcome run(StepContext&) override {
      if (ok) return Completed{};
      return Fail{"downstream unavailable", true};
    }
  };
  struct Count : Handler {
    std::atomic<int>& n;
    explicit Count(std::atomic<int>& c) : n(c) {}
    StepOutcome run(StepContext&) override {
      ++n;
      return Completed{{{"n", n.load()}}};
    }
  };
  extra->add("gate", std::make_shared<Gate>(healthy));
  extra->add("count", std::make_shared<Count>(first_calls));
  EngineHarness h(dsn(), {R"(
name: retryable
on: [{ event: demo.retryable }]
steps:
  first: { handler: count }
  second: { handler: gate, needs: [first] }
  third: { handler: noop, needs: [second] }
)"},
                  extra);
  h.start();
  const auto id = h.start_run("demo.retryable");
  ASSERT_TRUE(h.wait_status(id, "failed"));
  std::string msg;
  EXPECT_EQ(h.store().retry_run(id + 1000, &msg), store::Store::CommandResult::kNotFound);
  healthy = true;
  ASSERT_EQ(h.store().retry_run(id, &msg), store::Store::CommandResult::kOk) << msg;
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  EXPECT_EQ(first_calls.load(), 1);  // the succeeded step was not re-run
  EXPECT_EQ(h.store().retry_run(id, &msg), store::Store::CommandResult::kConflict);
}

TEST_F(EngineTest, TimeoutFailsTheAttemptAndRetries) {
  EngineHarness h(dsn(), {R"(
name: slow
on: [{ event: demo.slow }]
steps:
  a: { handler: work, input: { ms: 400 }, timeout: 100ms, retry: { max_attempts: 2, initial: 10ms } }
)"});
  h.start();
  const auto id = h.start_run("demo.slow");
  ASSERT_TRUE(h.wait_status(id, "failed"));
  auto a = h.step(id, "a");
  EXPECT_EQ(a.value("attempts", 0), 2);
  EXPECT_NE(a.value("error", "").find("timed out"), std::string::npos) << a.dump();
}

TEST_F(EngineTest, WaitForSignalSurvivesARestart) {
  const std::string wf = R"(
name: approval
on: [{ event: demo.approval }]
steps:
  ask: { handler: wait_signal, input: { signal: approve } }
  after: { handler: noop, needs: [ask] }
)";
  std::int64_t id = 0;
  {
    EngineHarness first(dsn(), {wf});
    first.start();
    id = first.start_run("demo.approval");
    ASSERT_TRUE(first.wait_status(id, "waiting"));
    EXPECT_EQ(first.step(id, "ask").value("status", ""), "waiting");
  }  // the process "dies" while the step waits: no thread held anything
  EngineHarness second(dsn(), {wf});
  second.start();
  std::string msg;
  ASSERT_EQ(second.store().signal(id, "approve", {{"by", "dr-1"}}, &msg),
            store::Store::CommandResult::kOk);
  ASSERT_TRUE(second.wait_status(id, "succeeded"));
  EXPECT_EQ(second.step(id, "ask").at("output").at("payload").value("by", ""), "dr-1");
  EXPECT_EQ(second.store().signal(id, "approve", Json::object(), &msg),
            store::Store::CommandResult::kConflict);
}

// Issue #16: a run whose review waited showed `running` once a sibling step finished. A run is
// `waiting` while any of its steps waits, whatever its other steps do meanwhile.
TEST_F(EngineTest, ARunIsWaitingWhileAStepWaitsEvenAfterItsSiblingsFinish) {
  auto extra = std::make_shared<HandlerRegistry>();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> side_started{false};
  struct Held : Handler {
    std::shared_future<void> until;
    std::atomic<bool>& started;
    Held(std::shared_future<void> u, std::atomic<bool>& s) : until(std::move(u)), started(s) {}
    StepOutcome run(StepContext&) override {
      started = true;
      until.wait();
      return Completed{};
    }
  };
  extra->add("held", std::make_shared<Held>(released, side_started));
  EngineHarness h(dsn(), {R"(
name: two-waits
on: [{ event: demo.two-waits }]
steps:
  ask: { handler: wait_signal, input: { signal: approve } }
  ask_too: { handler: wait_signal, input: { signal: second } }
  # After a step of its own: a worker commits a batch's waits and finishes together, so the held
  # step must not share the waits' batch.
  pre: { handler: noop }
  side: { handler: held, needs: [pre] }
)"},
                  extra);
  bool set = false;
  // The held step must be let go before the harness stops, even when an assertion returns early.
  struct LetGo {
    std::promise<void>& p;
    bool& done;
    ~LetGo() {
      if (!done) p.set_value();
    }
  } let_go{release, set};
  h.start();
  const auto id = h.start_run("demo.two-waits");
  ASSERT_TRUE(wait_until([&] {
    return side_started && h.step(id, "ask").value("status", "") == "waiting" &&
           h.step(id, "ask_too").value("status", "") == "waiting";
  }));
  EXPECT_EQ(h.run(id).value("status", ""), "waiting");
  release.set_value();
  set = true;
  ASSERT_TRUE(wait_until([&] { return h.step(id, "side").value("status", "") == "succeeded"; }));
  EXPECT_EQ(h.run(id).value("status", ""), "waiting") << "the sibling's finish left it running";

  std::string msg;
  ASSERT_EQ(h.store().signal(id, "approve", Json::object(), &msg),
            store::Store::CommandResult::kOk);
  ASSERT_TRUE(wait_until([&] { return h.step(id, "ask").value("status", "") == "succeeded"; }));
  EXPECT_EQ(h.run(id).value("status", ""), "waiting") << "ask_too still waits";

  ASSERT_EQ(h.store().signal(id, "second", Json::object(), &msg), store::Store::CommandResult::kOk);
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
}

TEST_F(EngineTest, SignalSentBeforeTheStepWaitsIsNotLost) {
  EngineHarness h(dsn(), {R"(
name: early
on: [{ event: demo.early }]
steps:
  first: { handler: sleep, input: { ms: 200 } }
  ask: { handler: wait_signal, needs: [first], input: { signal: go } }
)"});
  h.start();
  const auto id = h.start_run("demo.early");
  std::string msg;
  ASSERT_EQ(h.store().signal(id, "go", {{"early", true}}, &msg), store::Store::CommandResult::kOk);
  EXPECT_EQ(msg, "stored");
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  EXPECT_TRUE(h.step(id, "ask").at("output").at("payload").value("early", false));
}

TEST_F(EngineTest, WaitDeadlineWakesTheHandler) {
  EngineHarness h(dsn(), {R"(
name: deadline
on: [{ event: demo.deadline }]
steps:
  ask: { handler: wait_signal, input: { signal: never, timeout_ms: 200 } }
)"});
  h.start();
  const auto id = h.start_run("demo.deadline");
  ASSERT_TRUE(h.wait_status(id, "failed"));
  EXPECT_EQ(h.step(id, "ask").value("error", ""), "no signal before the deadline");
}

TEST_F(EngineTest, DurableTimerFiresAfterARestart) {
  const std::string wf = R"(
name: nap
on: [{ event: demo.nap }]
steps:
  sleep: { handler: sleep, input: { ms: 600 } }
  after: { handler: noop, needs: [sleep] }
)";
  std::int64_t id = 0;
  {
    EngineHarness first(dsn(), {wf});
    first.start();
    id = first.start_run("demo.nap");
    ASSERT_TRUE(first.wait_status(id, "waiting"));
  }
  EngineHarness second(dsn(), {wf});
  second.start();
  ASSERT_TRUE(second.wait_status(id, "succeeded"));
  auto run = second.run(id);
  EXPECT_EQ(history_count(run, "succeeded", "sleep"), 1);
}

TEST_F(EngineTest, SameDedupKeyStartsNothingNew) {
  EngineHarness h(dsn(), {kDiamond});
  store::EventInput ev;
  ev.type = "demo.diamond";
  ev.body = {{"skip_e", true}};
  ev.dedup_key = "upload-123";
  auto first = h.engine().ingest(ev);
  auto second = h.engine().ingest(ev);
  EXPECT_FALSE(first.duplicate);
  EXPECT_TRUE(second.duplicate);
  EXPECT_EQ(first.event_id, second.event_id);
  EXPECT_EQ(first.run_ids, second.run_ids);
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run"), "1");
  // Another type with the same key is another event.
  ev.type = "demo.other";
  EXPECT_FALSE(h.engine().ingest(ev).duplicate);
}

TEST_F(EngineTest, RunsKeepTheVersionTheyStartedWith) {
  EngineHarness h(dsn(), {R"(
name: pinned
on: [{ event: demo.pinned }]
steps:
  one: { handler: noop, input: { v: 1 } }
)"});
  const auto old_run = h.start_run("demo.pinned");
  h.publish({R"(
name: pinned
on: [{ event: demo.pinned }]
steps:
  one: { handler: noop, input: { v: 2 } }
  two: { handler: noop, needs: [one] }
)"});
  const auto new_run = h.start_run("demo.pinned");
  h.start();
  ASSERT_TRUE(h.wait_status(old_run, "succeeded"));
  ASSERT_TRUE(h.wait_status(new_run, "succeeded"));
  EXPECT_EQ(h.run(old_run).value("version", 0), 1);
  EXPECT_EQ(h.run(new_run).value("version", 0), 2);
  EXPECT_EQ(h.step(old_run, "one").at("output").value("v", 0), 1);
  EXPECT_EQ(h.run(old_run).at("steps").size(), 1u);
  EXPECT_EQ(h.step(new_run, "one").at("output").value("v", 0), 2);
  // Publishing identical content again is not a new version.
  h.publish({R"(
name: pinned
on: [{ event: demo.pinned }]
steps:
  one: { handler: noop, input: { v: 2 } }
  two: { handler: noop, needs: [one] }
)"});
  EXPECT_EQ(scalar("SELECT max(version) FROM workflow_version WHERE name = 'pinned'"), "2");
}

TEST_F(EngineTest, CancelStopsAWaitingRun) {
  EngineHarness h(dsn(), {R"(
name: cancellable
on: [{ event: demo.cancel }]
steps:
  ask: { handler: wait_signal }
  after: { handler: noop, needs: [ask] }
)"});
  h.start();
  const auto id = h.start_run("demo.cancel");
  ASSERT_TRUE(h.wait_status(id, "waiting"));
  std::string msg;
  ASSERT_EQ(h.store().cancel(id, &msg), store::Store::CommandResult::kOk);
  EXPECT_EQ(h.run_status(id), "cancelled");
  EXPECT_EQ(h.step(id, "ask").value("status", ""), "cancelled");
  EXPECT_EQ(h.step(id, "after").value("status", ""), "cancelled");
  EXPECT_EQ(h.store().cancel(id, &msg), store::Store::CommandResult::kConflict);
  EXPECT_EQ(h.store().signal(id, "continue", Json::object(), &msg),
            store::Store::CommandResult::kConflict);
}

// Counts how many steps of each key (the event's "patient") run at once.
struct PeakTracker : Handler {
  std::mutex mu;
  std::map<std::string, int> running;
  std::map<std::string, int> peak;
  StepOutcome run(StepContext& ctx) override {
    const std::string key = ctx.event().value("patient", "");
    {
      std::lock_guard lock(mu);
      peak[key] = std::max(peak[key], ++running[key]);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    {
      std::lock_guard lock(mu);
      --running[key];
    }
    return Completed{};
  }
};

// Runs `runs` one-step runs whose key cycles through `keys` patients under concurrency
// `limit`; returns the run ids once all succeeded.
std::vector<std::int64_t> run_keyed(const std::string& dsn, PeakTracker& tracker, int limit,
                                    int keys, int runs, runtime::EngineSettings settings) {
  auto extra = std::make_shared<HandlerRegistry>();
  extra->add("track", std::shared_ptr<Handler>(&tracker, [](Handler*) {}));
  EngineHarness h(dsn,
                  {"name: perpatient\non: [{ event: demo.bill }]\nsteps:\n  bill: { handler: "
                   "track, concurrency: { limit: " +
                   std::to_string(limit) + ", key: /event/patient } }\n"},
                  extra, std::move(settings));
  std::vector<std::int64_t> ids;
  ids.reserve(runs);
  for (int i = 0; i < runs; ++i)
    ids.push_back(h.start_run("demo.bill", {{"patient", "p" + std::to_string(i % keys)}}));
  h.start();
  for (auto id : ids) EXPECT_TRUE(h.wait_status(id, "succeeded")) << id;
  return ids;
}

TEST_F(EngineTest, ConcurrencyLimitPerKeyHolds) {
  PeakTracker tracker;
  runtime::EngineSettings settings;
  settings.workers = 6;
  settings.batch_size = 1;
  run_keyed(dsn(), tracker, 1, 2, 12, settings);
  EXPECT_EQ(tracker.peak["p0"], 1);
  EXPECT_EQ(tracker.peak["p1"], 1);
}

// Whole batches: one claim takes steps of several keys at once (step_claim in
// schema/engine/0002_queue.sql), never more of a key than its limit leaves room for, and every step
// runs exactly once.
TEST_F(EngineTest, ConcurrencyLimitHoldsForBatchesOfManyKeys) {
  PeakTracker tracker;
  runtime::EngineSettings settings;
  settings.workers = 3;
  const auto ids = run_keyed(dsn(), tracker, 2, 5, 30, settings);
  for (int p = 0; p < 5; ++p) {
    const std::string key = "p" + std::to_string(p);
    EXPECT_GE(tracker.peak[key], 1) << key;
    EXPECT_LE(tracker.peak[key], 2) << key;
  }
  const std::string first = std::to_string(ids.front()), last = std::to_string(ids.back());
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'started' AND run_id BETWEEN " +
                   first + " AND " + last),
            "30");
  // Some claim took steps of more than one key: their 'started' rows share a transaction.
  EXPECT_NE(scalar("SELECT count(*) FROM (SELECT h.xmin::text FROM run_history h JOIN step_run s "
                   "ON s.run_id = h.run_id AND s.step_key = h.step WHERE h.type = 'started' AND "
                   "h.run_id BETWEEN " +
                   first + " AND " + last +
                   " GROUP BY h.xmin::text HAVING count(DISTINCT s.concurrency_key) > 1) t"),
            "0");
}

TEST_F(EngineTest, HandlerWritesCommitExactlyOnceWithTheStep) {
  auto extra = std::make_shared<HandlerRegistry>();
  struct Ledger : Handler {
    std::atomic<int> calls{0};
    StepOutcome run(StepContext& ctx) override {
      ctx.sql().query("INSERT INTO test_ledger (key) VALUES ($1)", {ctx.idempotency_key()});
      // The first attempt writes, then fails: its write must vanish with it.
      if (++calls == 1) return Retry{"transient", std::chrono::milliseconds(10)};
      return Completed{};
    }
  };
  auto ledger = std::make_shared<Ledger>();
  extra->add("ledger", ledger);
  scalar("CREATE TABLE test_ledger (key text PRIMARY KEY)");
  EngineHarness h(dsn(), {kLedgerWorkflow}, extra);
  h.start();
  const auto id = h.start_run("demo.bill");
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  EXPECT_EQ(ledger->calls.load(), 2);
  EXPECT_EQ(scalar("SELECT count(*) FROM test_ledger"), "1");
  EXPECT_EQ(scalar("SELECT key FROM test_ledger"), "run-" + std::to_string(id) + "/bill");
}

// A batch that fails as a whole (here its commit, as a deadlock with another batch would) is
// rolled back with its handlers' writes; its steps are still claimed, so the worker runs them
// again one per transaction at once instead of leaving them to wait out a 60 s lease.
TEST_F(EngineTest, ABatchThatFailsAtCommitIsRerunStepByStepWithoutWaitingForItsLeases) {
  auto extra = std::make_shared<HandlerRegistry>();
  struct Ledger : Handler {
    StepOutcome run(StepContext& ctx) override {
      ctx.sql().query("INSERT INTO test_ledger (key) VALUES ($1)", {ctx.idempotency_key()});
      return Completed{};
    }
  };
  extra->add("ledger", std::make_shared<Ledger>());
  scalar("CREATE TABLE test_ledger (key text PRIMARY KEY)");
  // Checked at commit; a sequence is not rolled back, so only the first commit fails.
  scalar("CREATE SEQUENCE commit_failures");
  scalar(
      "CREATE FUNCTION fail_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF "
      "nextval('commit_failures') = 1 THEN RAISE EXCEPTION 'injected commit failure'; END IF; "
      "RETURN NULL; END $$");
  scalar(
      "CREATE CONSTRAINT TRIGGER fail_first_commit AFTER INSERT ON test_ledger DEFERRABLE "
      "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_first_commit()");
  runtime::EngineSettings settings;
  settings.workers = 1;  // one worker: the three runs' steps share its batches
  settings.lease = std::chrono::seconds(60);
  EngineHarness h(dsn(), {kLedgerWorkflow}, extra, settings);
  std::vector<std::int64_t> ids;
  ids.reserve(3);
  for (int i = 0; i < 3; ++i) ids.push_back(h.start_run("demo.bill", {{"n", i}}));
  h.start();
  for (auto id : ids) ASSERT_TRUE(h.wait_status(id, "succeeded", std::chrono::seconds(15)));
  EXPECT_GE(std::stoi(scalar("SELECT last_value FROM commit_failures")), 2);
  EXPECT_EQ(scalar("SELECT count(*) FROM test_ledger"), "3");
  // The rolled-back batch used no attempt and expired no lease.
  EXPECT_EQ(scalar("SELECT max(attempt) FROM step_run"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'lease_expired'"), "0");
}

// A batch whose steps take long is committed part way (kMaxBatchOpen) and carries on in a new
// transaction on the same connection: every step runs once, and its write stands.
TEST_F(EngineTest, ASlowBatchCommitsPartWayAndRunsEachStepOnce) {
  auto extra = std::make_shared<HandlerRegistry>();
  struct SlowLedger : Handler {
    std::atomic<int> calls{0};
    StepOutcome run(StepContext& ctx) override {
      ++calls;
      ctx.sql().query("INSERT INTO test_ledger (key) VALUES ($1)", {ctx.idempotency_key()});
      std::this_thread::sleep_for(std::chrono::milliseconds(80));
      return Completed{};
    }
  };
  auto ledger = std::make_shared<SlowLedger>();
  extra->add("ledger", ledger);
  scalar("CREATE TABLE test_ledger (key text PRIMARY KEY)");
  runtime::EngineSettings settings;
  settings.workers = 1;  // the four runs' steps share its batches
  EngineHarness h(dsn(), {kLedgerWorkflow}, extra, settings);
  std::vector<std::int64_t> ids;
  ids.reserve(4);
  for (int i = 0; i < 4; ++i) ids.push_back(h.start_run("demo.bill", {{"n", i}}));
  h.start();
  for (auto id : ids) ASSERT_TRUE(h.wait_status(id, "succeeded", std::chrono::seconds(15)));
  EXPECT_EQ(ledger->calls.load(), 4);
  EXPECT_EQ(scalar("SELECT count(*) FROM test_ledger"), "4");
}

// An engine wakes its own workers when it ingests; the NOTIFY that tells other processes
// carries its origin, so its own dispatcher does not wake one more worker for the echo.
TEST_F(EngineTest, AnIngestsWakeUpIsAnEchoOnlyForTheProcessThatSentIt) {
  runtime::EngineSettings settings;
  settings.instance_id = "engine-a";
  EngineHarness h(dsn(), {"{name: echo, on: [{event: demo.echo}], steps: {a: {handler: noop}}}"},
                  nullptr, settings);  // not started: no dispatcher of its own
  store::Store same(dsn()), other(dsn());
  same.listen_wakeups("engine-a");
  other.listen_wakeups("engine-b");
  h.start_run("demo.echo");
  EXPECT_TRUE(other.await_notification(std::chrono::seconds(5)));
  EXPECT_FALSE(same.await_notification(std::chrono::milliseconds(300)));
  // Wake-ups without an origin (signals, operator retries, timers) count everywhere.
  scalar("SELECT pg_notify('chartflow_wakeup_' || current_schema(), '')");
  EXPECT_TRUE(same.await_notification(std::chrono::seconds(5)));
  EXPECT_TRUE(other.await_notification(std::chrono::seconds(5)));
  // The wake-up goes out with the run's insert; a duplicate event starts nothing and wakes no
  // one.
  h.start_run("demo.echo", Json::object(), "once");
  EXPECT_TRUE(other.await_notification(std::chrono::seconds(5)));
  h.start_run("demo.echo", Json::object(), "once");
  EXPECT_FALSE(other.await_notification(std::chrono::milliseconds(300)));
}

TEST_F(EngineTest, LostLeaseDiscardsTheLateFinisher) {
  auto extra = std::make_shared<HandlerRegistry>();
  // The first attempt holds until the test lets it go, after another attempt has taken the step
  // over and finished: a late finisher by construction, not by timing.
  struct Slow : Handler {
    std::atomic<int> calls{0};
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    StepOutcome run(StepContext& ctx) override {
      ctx.sql().query("INSERT INTO test_effect (run_id, attempt) VALUES ($1, $2)",
                      {std::to_string(ctx.run_id()), std::to_string(ctx.attempt())});
      if (++calls == 1) released.wait_for(std::chrono::seconds(60));
      return Completed{};
    }
  };
  auto slow = std::make_shared<Slow>();
  extra->add("slow", slow);
  scalar("CREATE TABLE test_effect (run_id bigint, attempt int)");
  runtime::EngineSettings settings;
  settings.lease = std::chrono::milliseconds(300);
  settings.workers = 2;
  settings.batch_size = 1;
  EngineHarness h(dsn(), {R"(
name: lease
on: [{ event: demo.lease }]
steps:
  s: { handler: slow, retry: { max_attempts: 3 } }
)"},
                  extra, settings);
  // The heartbeat would renew the lease; this engine's dispatcher runs at most every 200 ms and
  // heartbeats every lease/3 = 100 ms, so stop the renewals by expiring the lease by hand.
  h.start();
  const auto id = h.start_run("demo.lease");
  ASSERT_TRUE(wait_until(
      [&] { return slow->calls.load() == 1 && h.step(id, "s").value("status", "") == "running"; }));
  scalar(
      "UPDATE step_run SET lease_expires_at = now() - interval '1 second', lease_owner = 'dead' "
      "WHERE run_id = " +
      std::to_string(id));
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  ASSERT_EQ(slow->calls.load(), 2);
  slow->release.set_value();
  // The late attempt's commit finds the step taken over: rolled back (the engine logs the lost
  // lease once it has), and not run again.
  const auto lost_logged =
      "SELECT count(*) FROM log_record WHERE message = 'step_lease_lost' AND "
      "fields->>'run' = '" +
      std::to_string(id) + "'";
  ASSERT_TRUE(wait_until([&] { return scalar(lost_logged) != "0"; }, std::chrono::seconds(30)))
      << "the late finisher never reached its commit";
  EXPECT_EQ(slow->calls.load(), 2);
  EXPECT_EQ(scalar("SELECT count(*) FROM test_effect"), "1");
  EXPECT_EQ(scalar("SELECT attempt FROM test_effect"), "2");
  EXPECT_EQ(history_count(h.run(id), "succeeded", "s"), 1);
}

TEST_F(EngineTest, ConcurrentMigrationsApplyOnce) {
  // The fixture migrated already; a fresh schema raced by two migrators must end the same.
  scalar("DROP TABLE IF EXISTS schema_migration CASCADE");
  scalar("DROP SCHEMA IF EXISTS mig_race CASCADE");
  scalar("CREATE SCHEMA mig_race");
  const std::string race_dsn = base_dsn() +
                               (base_dsn().find('?') == std::string::npos ? "?" : "&") +
                               "options=-csearch_path%3Dmig_race";
  std::atomic<int> total{0};
  const std::vector<MigrationSet> charts = {handlers::chart_migrations()};
  std::thread t1([&] { total += store::Store(race_dsn).migrate(charts); });
  std::thread t2([&] { total += store::Store(race_dsn).migrate(charts); });
  t1.join();
  t2.join();
  EXPECT_EQ(total.load(), static_cast<int>(store::embedded_migrations().migrations.size() +
                                           charts[0].migrations.size()));
  scalar("DROP SCHEMA mig_race CASCADE");
}

TEST_F(EngineTest, IdleEngineMakesAtMostOneQueryPerSecond) {
  EngineHarness h(dsn(), {kDiamond}, nullptr, [] {
    runtime::EngineSettings s;
    s.poll_interval = std::chrono::milliseconds(999);  // the harness shortens the default
    return s;
  }());
  h.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // let start-up queries settle
  const auto before = store::Store::statements_issued();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  const auto after = store::Store::statements_issued();
  // One probe per poll interval; a busy-polling worker would issue dozens per second.
  EXPECT_LE(after - before, 5u) << "engine statements while idle for 4 s";
}

}  // namespace
}  // namespace chartflow::testing
