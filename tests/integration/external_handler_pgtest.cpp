// External handlers against a real PostgreSQL and real processes: each way a handler program can
// misbehave (hang, crash, garbage, oversize output, memory hog, error object) fails only that
// attempt and the run retries to success; warm processes are reused and recycled; a handler's
// concurrency limit holds across two engines; an unmodified Lambda-style Python handler runs and
// its logging lands in the step's logs.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "metrics/metrics.hpp"
#include "runtime/handler_setup.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

const std::string kHandlerDir = std::string(CHARTFLOW_SOURCE_DIR) + "/tests/data/handlers";

std::shared_ptr<HandlerRegistry> external_registry(runtime::external::PoolHooks hooks = {}) {
  auto registry = std::make_shared<HandlerRegistry>();
  runtime::register_external_handlers(*registry, kHandlerDir, std::move(hooks));
  return registry;
}

// A one-step workflow running misbehave.py in `mode` on its first attempt.
std::string misbehaving(const std::string& mode, const std::string& extra = "") {
  return fmt::format(R"(
name: ext-{0}
on: [{{ event: ext.{0} }}]
steps:
  call:
    handler: {{ exec: [python3, misbehave.py], timeout: 2s, max_output: 10Ki, memory: 256Mi{1} }}
    input: {{ mode: {0} }}
    retry: {{ max_attempts: 3, initial: 10ms, max: 10ms }}
)",
                     mode, extra);
}

class ExternalHandlerTest : public PgTest {
 protected:
  // The step's log lines as "level:message".
  std::vector<std::string> step_logs(std::int64_t run_id) {
    const std::string rows = scalar(
        "SELECT string_agg(level || ':' || message, E'\\n' ORDER BY id) FROM log_record "
        "WHERE run_id = " +
        std::to_string(run_id));
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < rows.size()) {
      const auto nl = rows.find('\n', start);
      out.push_back(rows.substr(start, nl - start));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
    return out;
  }

  bool has_log(std::int64_t run_id, const std::string& needle) {
    for (const auto& l : step_logs(run_id))
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }

  // Runs misbehave.py in `mode`: the first attempt fails with a reason containing `reason`, the
  // second succeeds.
  void expect_failed_then_retried(const std::string& mode, const std::string& reason,
                                  const std::string& extra = "") {
    EngineHarness h(dsn(), {misbehaving(mode, extra)}, external_registry());
    h.start();
    const auto id = h.start_run("ext." + mode, {{"n", 1}});
    ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
    const Json step = h.step(id, "call");
    EXPECT_EQ(step.value("attempts", 0), 2) << step.dump();
    EXPECT_EQ(step.at("output").value("attempt", 0), 2);
    EXPECT_TRUE(has_log(id, "3:step attempt failed: " + reason))
        << mode << " logs:\n"
        << scalar("SELECT string_agg(message, E'\\n') FROM log_record WHERE run_id = " +
                  std::to_string(id));
  }
};

TEST_F(ExternalHandlerTest, ExecHandlerGetsEventContextAndItsStderrBecomesStepLogs) {
  EngineHarness h(dsn(), {misbehaving("ok")}, external_registry());
  h.start();
  const auto id = h.start_run("ext.ok", {{"chart", "c-1"}});
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
  const Json out = h.step(id, "call").at("output");
  EXPECT_EQ(out.at("event"), Json({{"chart", "c-1"}}));
  EXPECT_EQ(out.value("key", ""), "run-" + std::to_string(id) + "/call");
  // A JSON log line keeps its level, a plain one is info.
  EXPECT_TRUE(has_log(id, "2:attempt 1"));
  EXPECT_TRUE(has_log(id, "1:plain text line"));
  EXPECT_EQ(
      scalar("SELECT fields->>'mode' FROM log_record WHERE message = 'attempt 1' AND run_id = " +
             std::to_string(id)),
      "ok");
  // Both kinds are marked as the handler's stderr (operators' views redact it for chart runs).
  EXPECT_EQ(scalar("SELECT count(*) FROM log_record WHERE fields->>'stream' = 'stderr' AND "
                   "message IN ('attempt 1', 'plain text line') AND run_id = " +
                   std::to_string(id)),
            "2");
}

TEST_F(ExternalHandlerTest, HangingHandlerIsKilledAtItsTimeoutAndTheRunRetries) {
  const auto t0 = std::chrono::steady_clock::now();
  expect_failed_then_retried("hang", "handler timed out after 2s");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST_F(ExternalHandlerTest, CrashingHandlerFailsTheAttempt) {
  expect_failed_then_retried("crash", "handler process exited with status 3");
}

TEST_F(ExternalHandlerTest, GarbageOutputFailsTheAttempt) {
  expect_failed_then_retried("garbage", "handler wrote a line that is not a JSON response");
}

TEST_F(ExternalHandlerTest, OversizeOutputFailsTheAttemptWithTheLimit) {
  expect_failed_then_retried("oversize",
                             "handler output exceeds the max_output limit of 10240 bytes");
}

TEST_F(ExternalHandlerTest, MemoryHogHitsTheCapAndFailsTheAttempt) {
  // 512 MiB does not fit under 256 MiB of address space: Python's MemoryError kills the script.
  expect_failed_then_retried("memory", "handler process exited with status 1");
}

// Issue #14 item 13 (in part): a handler ran with only RLIMIT_AS. It now cannot gain privileges
// (no_new_privs: setuid programs do not elevate it), write files past 64 MiB, or burn more than
// ten CPU-minutes in one process.
TEST_F(ExternalHandlerTest, HandlerProcessesRunWithNoNewPrivilegesAndFileAndCpuLimits) {
  EngineHarness h(dsn(), {misbehaving("sandbox")}, external_registry());
  h.start();
  const auto id = h.start_run("ext.sandbox", {{"n", 1}});
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
  const Json out = h.step(id, "call").at("output");
  EXPECT_EQ(out.value("no_new_privs", 0), 1) << out.dump();
  EXPECT_EQ(out.value("big_write", ""), "refused") << out.dump();
  EXPECT_EQ(out.value("fsize", 0LL), 64LL * 1024 * 1024);
  EXPECT_EQ(out.value("cpu", 0LL), 600);
}

// Issue #14 item 13: under root (deploy/run.sh, CI) a handler ran as root. With a handler user it
// runs as that user, with no supplementary groups and a cap on its processes; a chartflow that
// is not root refuses the setting at start rather than pretend.
TEST_F(ExternalHandlerTest, UnderRootHandlersRunAsTheHandlerUser) {
  if (geteuid() != 0) {
    try {
      runtime::external::resolve_run_as("nobody");
      ADD_FAILURE() << "a non-root chartflow accepted a handler user";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("only a chartflow running as root"), std::string::npos);
    }
    return;
  }
  EXPECT_THROW(runtime::external::resolve_run_as("no-such-user-here"), std::runtime_error);
  EXPECT_THROW(runtime::external::resolve_run_as("root"), std::runtime_error);
  // A folder the handler user can read (the test's checkout may sit in a private directory).
  const auto dir = std::filesystem::temp_directory_path() / ("cf-handler-user-" + schema());
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(
      dir, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
               std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
               std::filesystem::perms::others_exec);
  std::filesystem::copy_file(kHandlerDir + "/misbehave.py", dir / "misbehave.py",
                             std::filesystem::copy_options::overwrite_existing);
  runtime::external::PoolHooks hooks;
  hooks.run_as = runtime::external::resolve_run_as("nobody");
  auto registry = std::make_shared<HandlerRegistry>();
  runtime::register_external_handlers(*registry, dir, hooks);
  EngineHarness h(dsn(), {misbehaving("whoami")}, registry);
  h.start();
  const auto id = h.start_run("ext.whoami", {{"n", 1}});
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
  const Json out = h.step(id, "call").at("output");
  EXPECT_EQ(out.value("uid", -1), static_cast<int>(hooks.run_as->uid)) << out.dump();
  EXPECT_EQ(out.value("gid", -1), static_cast<int>(hooks.run_as->gid));
  EXPECT_TRUE(out.at("groups").empty() ||
              out.at("groups") == Json::array({static_cast<int>(hooks.run_as->gid)}))
      << out.dump();
  EXPECT_EQ(out.value("nproc", 0), 256);
  h.stop();
  std::filesystem::remove_all(dir);
}

TEST_F(ExternalHandlerTest, ErrorObjectFailsTheAttemptWithItsTypeAndMessage) {
  expect_failed_then_retried("error", "handler error: ValueError: bad input");
}

TEST_F(ExternalHandlerTest, WarmProcessIsReusedAndRecycledAfterMaxInvocations) {
  std::atomic<int> cold{0};
  runtime::external::PoolHooks hooks;
  hooks.cold_start = [&cold](const std::string&) { ++cold; };
  // min_warm 0: only invocations start processes, so pids tell reuse apart from spares.
  runtime::EngineSettings one_worker;
  one_worker.workers = 1;
  EngineHarness h(dsn(), {misbehaving("ok", ", min_warm: 0, max_invocations: 2")},
                  external_registry(hooks), one_worker);
  h.start();
  std::vector<int> pids;
  for (int i = 0; i < 3; ++i) {
    const auto id = h.start_run("ext.ok", {{"i", i}});
    ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
    pids.push_back(h.step(id, "call").at("output").value("pid", 0));
  }
  EXPECT_EQ(pids[0], pids[1]) << "second invocation reuses the warm process";
  EXPECT_NE(pids[1], pids[2]) << "recycled after max_invocations: 2";
  EXPECT_EQ(cold.load(), 2);
  EXPECT_NE(::kill(pids[0], 0), 0) << "the recycled process was killed";
}

TEST_F(ExternalHandlerTest, MinWarmStartsProcessesAheadOfNeed) {
  std::mutex mu;
  std::map<std::string, int> warm;
  std::atomic<int> cold{0};
  runtime::external::PoolHooks hooks;
  hooks.pool_size = [&](const std::string& name, int idle, int) {
    std::lock_guard lock(mu);
    warm[name] = idle;
  };
  hooks.cold_start = [&cold](const std::string&) { ++cold; };
  auto registry = external_registry(hooks);
  EngineHarness h(dsn(), {misbehaving("ok", ", min_warm: 2")}, registry);
  runtime::prewarm_external_handlers(*registry, {h.engine().workflows().latest().at(0)->workflow});
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return warm["misbehave.py"] == 2;
  }));
  h.start();
  const auto id = h.start_run("ext.ok");
  ASSERT_TRUE(h.wait_status(id, "succeeded"));
  EXPECT_EQ(cold.load(), 0) << "the invocation found a warm process";
}

TEST_F(ExternalHandlerTest, ConcurrencyOneHoldsAcrossTwoEngines) {
  const std::string wf = R"(
name: ext-serial
on: [{ event: ext.serial }]
steps:
  call:
    handler: { exec: [python3, misbehave.py], concurrency: 1, timeout: 5s }
    input: { mode: hold, ms: 400 }
)";
  EngineHarness a(dsn(), {wf}, external_registry());
  EngineHarness b(dsn(), {wf}, external_registry());
  // A runs the first invocation; while it holds the one slot, B gets work it must not start.
  a.start();
  const auto first = a.start_run("ext.serial", {{"i", 1}});
  ASSERT_TRUE(wait_until([&] { return a.step(first, "call").value("status", "") == "running"; }));
  b.start();
  const auto second = b.start_run("ext.serial", {{"i", 2}});
  // A stops claiming, so the second run can only go to B, once A's invocation is over.
  std::thread drain_a([&] { a.stop(); });
  ASSERT_TRUE(b.wait_status(second, "succeeded")) << b.run(second).dump();
  drain_a.join();
  ASSERT_EQ(b.run_status(first), "succeeded");
  const Json one = b.step(first, "call").at("output");
  const Json two = b.step(second, "call").at("output");
  EXPECT_NE(one.at("pid"), two.at("pid")) << "each engine ran one with its own process";
  EXPECT_LE(one.at("end").get<double>(), two.at("start").get<double>())
      << "B started while A's invocation held the only slot";
}

const std::string kLambda = R"(
name: ext-lambda
on: [{ event: ext.lambda }]
steps:
  call:
    handler: { runtime: python3, entry: lambda_fixture.lambda_handler, timeout: 3s, memory: 256Mi }
    retry: { max_attempts: 2, initial: 10ms, max: 10ms }
)";

TEST_F(ExternalHandlerTest, UnmodifiedLambdaHandlerRunsAndItsLoggingLandsInStepLogs) {
  EngineHarness h(dsn(), {kLambda}, external_registry());
  h.start();
  const auto id = h.start_run("ext.lambda", {{"name", "Ada"}});
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
  const Json out = h.step(id, "call").at("output");
  EXPECT_EQ(out.value("name", ""), "Ada");
  EXPECT_EQ(out.value("function_name", ""), "lambda_fixture.lambda_handler");
  EXPECT_EQ(out.value("memory", 0), 256);
  EXPECT_EQ(out.value("idempotency_key", ""), "run-" + std::to_string(id) + "/call");
  EXPECT_EQ(out.value("request_id", "").size(), 36u);
  EXPECT_GT(out.value("remaining_ms", 0), 0);
  EXPECT_LE(out.value("remaining_ms", 0), 3000);
  EXPECT_TRUE(has_log(id, "0:debug detail"));
  EXPECT_TRUE(has_log(id, "1:hello from lambda_fixture.lambda_handler"));
  EXPECT_TRUE(has_log(id, "2:careful"));
  EXPECT_TRUE(has_log(id, "1:printed text"));
}

TEST_F(ExternalHandlerTest, LambdaExceptionFailsWithTypeAndMessage) {
  EngineHarness h(dsn(), {kLambda}, external_registry());
  h.start();
  const auto id = h.start_run("ext.lambda", {{"raise", true}});
  ASSERT_TRUE(h.wait_status(id, "failed")) << h.run(id).dump();
  const Json step = h.step(id, "call");
  EXPECT_EQ(step.value("attempts", 0), 2);
  EXPECT_EQ(step.value("error", ""), "handler error: KeyError: 'missing_thing'");
  EXPECT_TRUE(has_log(id, "3:handler raised KeyError"));
}

TEST_F(ExternalHandlerTest, LambdaHandlerWaitsForASignal) {
  EngineHarness h(dsn(), {kLambda}, external_registry());
  h.start();
  const auto id = h.start_run("ext.lambda", {{"wait", true}});
  ASSERT_TRUE(wait_until([&] { return h.step(id, "call").value("status", "") == "waiting"; }));
  std::string msg;
  ASSERT_EQ(h.store().signal(id, "approve", {{"by", "dr-1"}}, &msg),
            store::Store::CommandResult::kOk);
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
  const Json wake = h.step(id, "call").at("output").at("wake");
  EXPECT_EQ(wake.value("kind", ""), "signal");
  EXPECT_EQ(wake.at("payload"), Json({{"by", "dr-1"}}));
}

// The shipped example, loaded from workflows/ the way `chartflow serve` loads it.
TEST_F(ExternalHandlerTest, ExampleGreetWorkflowRuns) {
  const std::string workflows = std::string(CHARTFLOW_SOURCE_DIR) + "/workflows";
  auto registry = std::make_shared<HandlerRegistry>();
  runtime::register_external_handlers(*registry, workflows);
  std::ifstream in(workflows + "/greet.yaml");
  std::stringstream text;
  text << in.rdbuf();
  EngineHarness h(dsn(), {text.str()}, registry);
  h.start();
  const auto id = h.start_run("demo.greet", {{"name", "Ada"}});
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
  const Json out = h.step(id, "greet").at("output");
  EXPECT_EQ(out.value("greeting", ""), "Hello, Ada!");
  EXPECT_TRUE(has_log(id, "1:greeting request "));
}

TEST_F(ExternalHandlerTest, PoolSizeAndColdStartsReachTheMetrics) {
  metrics::Metrics metrics;
  runtime::external::PoolHooks hooks;
  hooks.pool_size = [&metrics](const std::string& name, int warm, int busy) {
    metrics.handler_pool(name, warm, busy);
  };
  hooks.cold_start = [&metrics](const std::string& name) { metrics.handler_cold_start(name); };
  {
    EngineHarness h(dsn(), {misbehaving("ok", ", min_warm: 0, name: probe")},
                    external_registry(hooks));
    h.start();
    const auto id = h.start_run("ext.ok");
    ASSERT_TRUE(h.wait_status(id, "succeeded"));
    const std::string text = metrics.serialize();
    EXPECT_NE(text.find(R"(chartflow_handler_cold_starts_total{handler="probe"} 1)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(R"(chartflow_handler_processes{handler="probe",state="warm"} 1)"),
              std::string::npos)
        << text;
  }
}

TEST_F(ExternalHandlerTest, BadSettingsAreRejectedAtLoad) {
  auto registry = external_registry();
  auto check = runtime::handler_check(*registry);
  auto load = [&](const std::string& handler) {
    const auto r = config::load_workflow_text(
        "name: x\non: [{ event: x }]\nsteps:\n  s: { handler: " + handler + " }\n", "x.yaml",
        check);
    return r.errors.empty() ? std::string() : r.errors.front().message;
  };
  EXPECT_EQ(load("{ exec: [python3, misbehave.py] }"), "");
  EXPECT_NE(load("{ runtime: python3, entry: nowhere.lambda_handler }").find("no nowhere.py"),
            std::string::npos);
  EXPECT_NE(load("{ runtime: python3, entry: lambda_fixture }").find("must be module.function"),
            std::string::npos);
  EXPECT_NE(load("{ exec: [x], max_ouput: 1Ki }").find("unknown key 'max_ouput'"),
            std::string::npos);
  EXPECT_NE(load("{ exec: [x], env: { 1BAD: x } }").find("not a variable name"), std::string::npos);
}

}  // namespace
}  // namespace chartflow::testing
