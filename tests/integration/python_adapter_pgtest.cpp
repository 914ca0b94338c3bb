// The Python adapter (engine/runtime/external/chartflow_lambda.py) running unmodified
// `lambda_handler(event, context)` modules through the real engine and real processes: a handler
// that outlives its timeout, one that returns what JSON cannot hold, a module that cannot be
// imported, and warm reuse of one process across invocations.
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>
#include <string>
#include <vector>

#include "runtime/handler_setup.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

const std::string kHandlerDir = std::string(CHARTFLOW_SOURCE_DIR) + "/tests/data/handlers";

// One step running `entry` with `settings` added to its handler spec. The timeout leaves a cold
// Python start room on a loaded machine; the timeout test sets its own.
std::string lambda_workflow(const std::string& name, const std::string& entry,
                            const std::string& settings = "", const std::string& timeout = "10s") {
  return "name: " + name + "\non: [{ event: " + name + " }]\nsteps:\n  call:\n" +
         "    handler: { runtime: python3, entry: " + entry + ", timeout: " + timeout + settings +
         " }\n" + "    retry: { max_attempts: 2, initial: 10ms, max: 10ms }\n";
}

std::shared_ptr<HandlerRegistry> python_handlers() {
  auto registry = std::make_shared<HandlerRegistry>();
  runtime::register_external_handlers(*registry, kHandlerDir);
  return registry;
}

runtime::EngineSettings one_worker() {
  runtime::EngineSettings s;
  s.workers = 1;
  return s;
}

class PythonAdapterTest : public PgTest {
 protected:
  std::string run_logs(std::int64_t run_id) {
    return scalar(
        "SELECT string_agg(message || ' ' || fields::text, E'\\n' ORDER BY id) FROM log_record "
        "WHERE run_id = " +
        std::to_string(run_id));
  }
  // The pids the handler logged ("pid N invocation M"), in order.
  std::vector<int> logged_pids(std::int64_t run_id) {
    std::vector<int> pids;
    const std::string logs = run_logs(run_id);
    static const std::regex kPid(R"(pid (\d+) invocation)");
    for (auto it = std::sregex_iterator(logs.begin(), logs.end(), kPid);
         it != std::sregex_iterator(); ++it)
      pids.push_back(std::stoi((*it)[1]));
    return pids;
  }
};

TEST_F(PythonAdapterTest, HandlerPastItsTimeoutFailsTheAttemptAndItsProcessIsReplaced) {
  EngineHarness h(dsn(), {lambda_workflow("py.slow", "lambda_cases.lambda_handler", "", "4s")},
                  python_handlers(), one_worker());
  h.start();
  const auto t0 = std::chrono::steady_clock::now();
  const auto id = h.start_run("py.slow", {{"sleep_first", true}});
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
  // The first attempt sleeps 30 s; the 4 s timeout, not the sleep, ended it.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(25));
  const Json step = h.step(id, "call");
  EXPECT_EQ(step.value("attempts", 0), 2) << step.dump();
  EXPECT_NE(run_logs(id).find("step attempt failed: handler timed out after 4s"), std::string::npos)
      << run_logs(id);
  const auto pids = logged_pids(id);
  ASSERT_EQ(pids.size(), 2U) << run_logs(id);
  const Json out = step.at("output");
  EXPECT_EQ(out.value("pid", 0), pids[1]);
  EXPECT_NE(pids[0], pids[1]) << "the timed-out process served the retry";
  EXPECT_EQ(out.value("invocations", 0), 1) << "the retry ran in a fresh process";
  EXPECT_TRUE(wait_until([&] { return ::kill(pids[0], 0) != 0; }))
      << "the timed-out process " << pids[0] << " is still alive";
}

TEST_F(PythonAdapterTest, ReturnValueThatIsNotJsonFailsWithAClearErrorAndTheProcessLives) {
  EngineHarness h(dsn(),
                  {lambda_workflow("py.badjson", "lambda_cases.lambda_handler", ", min_warm: 0")},
                  python_handlers(), one_worker());
  h.start();
  const auto bad = h.start_run("py.badjson", {{"unserialisable", true}});
  ASSERT_TRUE(h.wait_status(bad, "failed")) << h.run(bad).dump();
  const std::string error = h.step(bad, "call").value("error", "");
  EXPECT_NE(error.find("return value is not JSON"), std::string::npos) << error;
  EXPECT_NE(error.find("datetime"), std::string::npos) << error;
  // Not a crash: the same process answers the next invocation.
  const auto good = h.start_run("py.badjson", {{"n", 1}});
  ASSERT_TRUE(h.wait_status(good, "succeeded")) << h.run(good).dump();
  const auto bad_pids = logged_pids(bad);
  ASSERT_FALSE(bad_pids.empty()) << run_logs(bad);
  EXPECT_EQ(h.step(good, "call").at("output").value("pid", 0), bad_pids.front());
  EXPECT_EQ(h.step(good, "call").at("output").value("invocations", 0), 3);
}

TEST_F(PythonAdapterTest, ModuleThatCannotBeImportedFailsNamingTheModule) {
  EngineHarness h(dsn(), {lambda_workflow("py.broken", "lambda_broken_import.lambda_handler")},
                  python_handlers());
  h.start();
  const std::string patient = "Zebulon Quartermaine-Okafor";
  const auto id = h.start_run("py.broken", {{"patient", patient}});
  ASSERT_TRUE(h.wait_status(id, "failed")) << h.run(id).dump();
  const Json step = h.step(id, "call");
  EXPECT_EQ(step.value("attempts", 0), 2);
  const std::string error = step.value("error", "");
  EXPECT_NE(error.find("ModuleNotFoundError"), std::string::npos) << error;
  EXPECT_NE(error.find("chartflow_no_such_dependency"), std::string::npos) << error;
  const std::string logs = run_logs(id);
  EXPECT_NE(logs.find("cannot load handler lambda_broken_import.lambda_handler"), std::string::npos)
      << logs;
  // The event is chart data: neither the error nor the logs repeat it.
  EXPECT_EQ(error.find(patient), std::string::npos);
  EXPECT_EQ(logs.find(patient), std::string::npos);
}

TEST_F(PythonAdapterTest, WarmProcessServesTheNextInvocation) {
  EngineHarness h(dsn(),
                  {lambda_workflow("py.warm", "lambda_cases.lambda_handler", ", min_warm: 0")},
                  python_handlers(), one_worker());
  h.start();
  std::vector<Json> outs;
  for (int i = 0; i < 2; ++i) {
    const auto id = h.start_run("py.warm", {{"i", i}});
    ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump();
    outs.push_back(h.step(id, "call").at("output"));
  }
  EXPECT_EQ(outs[0].value("pid", 0), outs[1].value("pid", -1));
  EXPECT_EQ(outs[0].value("invocations", 0), 1);
  EXPECT_EQ(outs[1].value("invocations", 0), 2) << "module state survives between invocations";
}

}  // namespace
}  // namespace chartflow::testing
