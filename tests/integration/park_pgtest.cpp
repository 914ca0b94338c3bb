// `on_exhausted: park` (issue #15 item 7, issue #17 item 2): a step whose attempts ran out waits
// for an operator instead of failing its run. It holds no lease and no worker, its run is
// `parked` until an operator acts, and the state is in the database (it survives restarts).
// Operators act through POST /v1/runs/{id}/steps/{step}/retry | skip | fail, each audited;
// other roles get 403.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <sstream>
#include <thread>

#include "runtime/engine.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/served_engine.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

// Fails every attempt until the test lets it succeed: an outside system that is down.
class Outage : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    if (!up) return Retry{"insurer answered 500", std::nullopt};
    return Completed{Json{{"attempt", ctx.attempt()}}};
  }
  std::atomic<bool> up{false};
};

constexpr const char* kParking = R"(name: parking
on: [{ event: demo.park }]
on_exhausted: park
steps:
  charge: { handler: outage, retry: { max_attempts: 2, initial: 10ms, jitter: 0 } }
  notify: { handler: noop, needs: [charge] }
)";

// Fails the element whose item is "down" until the test lets it succeed: one receiver of several
// that is down.
class ItemOutage : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    const Json item = ctx.input().value("item", Json());
    if (item == "down" && !up) return Retry{"receiver answered 503", std::nullopt};
    return Completed{Json{{"item", item}}};
  }
  std::atomic<bool> up{false};
};

// Each element of `charge` parks on its own (issue #18 part 3 with issue #17 item 2).
constexpr const char* kFanParking = R"(name: fan-parking
on: [{ event: demo.fan-park }]
on_exhausted: park
steps:
  charge:
    handler: item_outage
    for_each: /event/items
    retry: { max_attempts: 2, initial: 10ms, jitter: 0 }
  notify: { handler: noop, needs: [charge] }
)";

// Listens for the run-end event a failed `parking` run emits.
constexpr const char* kOnFailure = R"(name: on-failure
on:
  - event: workflow.failed
    filter: { path: /event/workflow, equals: parking }
steps:
  page: { handler: noop }
)";

int history_count(const Json& run, const std::string& type, const std::string& step) {
  int n = 0;
  for (const auto& e : run.at("history"))
    if (e.value("type", "") == type && e.at("step").is_string() && e.at("step") == step) ++n;
  return n;
}

// The served API (engine routes and sign-in) over an engine with the outage handler.
class ParkTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    outage_ = std::make_shared<Outage>();
    item_outage_ = std::make_shared<ItemOutage>();
    auto handlers = std::make_shared<HandlerRegistry>();
    handlers->add("outage", outage_);
    handlers->add("item_outage", item_outage_);
    runtime::EngineSettings harness_settings;
    harness_settings.workers = 0;
    harness_ = std::make_unique<EngineHarness>(
        dsn(), std::vector<std::string>{kParking, kFanParking, kOnFailure}, handlers,
        harness_settings);
    operator_ = create_token(dsn(), "operator");
    admin_ = create_token(dsn(), "admin");
    reviewer_ = create_token(dsn(), "reviewer", std::string("Practitioner/x"));
    serve();
  }

  // A new process, as far as the database can tell: its own engine, instance id and server.
  void serve() {
    runtime::EngineSettings settings;
    settings.workers = 2;
    settings.poll_interval = std::chrono::milliseconds(100);
    served_ = std::make_unique<ServedEngine>(dsn(), *harness_, settings);
  }

  void stop() { served_.reset(); }

  void TearDown() override {
    stop();
    harness_.reset();
    PgTest::TearDown();
  }

  HttpResponse call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "") {
    return served_->call(method, target, token, body);
  }

  std::int64_t parked_run() {
    const auto id = harness_->start_run("demo.park");
    EXPECT_TRUE(harness_->wait_status(id, "parked")) << harness_->run(id).dump();
    return id;
  }

  std::string step_url(std::int64_t run, const std::string& step, const std::string& action) {
    return "/v1/runs/" + std::to_string(run) + "/steps/" + step + "/" + action;
  }

  // A run of fan-parking over ["a", "down", "c"] whose element charge[1] has parked.
  std::int64_t parked_element_run() {
    const auto id = harness_->start_run("demo.fan-park", Json{{"items", {"a", "down", "c"}}});
    EXPECT_TRUE(harness_->wait_status(id, "parked")) << harness_->run(id).dump();
    return id;
  }

  // The value of chartflow_steps_parked for the step, as /metrics reports it ("" when absent).
  std::string parked_gauge(const std::string& step, const std::string& workflow = "parking") {
    std::istringstream lines(call("GET", "/metrics", operator_).body);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("chartflow_steps_parked{") &&
          line.find("step=\"" + step + "\"") != std::string::npos &&
          line.find("workflow=\"" + workflow + "\"") != std::string::npos)
        return line.substr(line.rfind(' ') + 1);
    return "";
  }

  std::int64_t audited(const std::string& action) {
    return std::stoll(scalar("SELECT count(*) FROM audit_event WHERE action = '" + action +
                             "' AND outcome = 'success'"));
  }

  std::shared_ptr<Outage> outage_;
  std::shared_ptr<ItemOutage> item_outage_;
  std::unique_ptr<EngineHarness> harness_;
  std::unique_ptr<ServedEngine> served_;
  std::string operator_, admin_, reviewer_;
};

TEST_F(ParkTest, AnExhaustedStepParksAndAnOperatorRetryRunsItAgain) {
  const auto id = parked_run();
  Json charge = harness_->step(id, "charge");
  EXPECT_EQ(charge.value("status", ""), "parked") << charge.dump();
  EXPECT_EQ(charge.value("attempts", 0), 2);
  EXPECT_TRUE(charge.at("parked_at").is_string()) << charge.dump();
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "pending");
  EXPECT_EQ(history_count(harness_->run(id), "parked", "charge"), 1);
  // No lease and no worker: nothing renews it, nothing claims it again.
  EXPECT_EQ(scalar("SELECT lease_owner IS NULL AND lease_expires_at IS NULL FROM step_run "
                   "WHERE step_key = 'charge'"),
            "t");
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(harness_->step(id, "charge").value("attempts", 0), 2);
  EXPECT_EQ(served_->engine().in_flight(), 0);

  // Shown where operators look: the parked view, the runs list, the gauge.
  auto parked = call("GET", "/v1/steps/parked", operator_);
  ASSERT_EQ(parked.status, 200) << parked.body;
  ASSERT_EQ(parked.json().at("steps").size(), 1U) << parked.body;
  EXPECT_EQ(parked.json()["steps"][0].value("run_id", 0), id);
  EXPECT_EQ(parked.json()["steps"][0].value("step", ""), "charge");
  EXPECT_EQ(parked.json()["steps"][0].value("workflow", ""), "parking");
  auto runs = call("GET", "/v1/runs?status=parked", operator_);
  ASSERT_EQ(runs.status, 200) << runs.body;
  EXPECT_EQ(runs.json().at("runs").size(), 1U);
  EXPECT_EQ(parked_gauge("charge"), "1");

  // Reviewers may not act on runs; nothing changes and no audit entry says it did.
  EXPECT_EQ(call("POST", step_url(id, "charge", "retry"), reviewer_).status, 403);
  EXPECT_EQ(harness_->step(id, "charge").value("status", ""), "parked");
  // A step that is not parked takes no operator action.
  EXPECT_EQ(call("POST", step_url(id, "notify", "retry"), operator_).status, 409);
  EXPECT_EQ(call("POST", step_url(id, "nosuch", "retry"), operator_).status, 404);
  EXPECT_EQ(call("POST", step_url(987654, "charge", "retry"), operator_).status, 404);

  outage_->up = true;
  auto retried = call("POST", step_url(id, "charge", "retry"), operator_);
  EXPECT_EQ(retried.status, 202) << retried.body;
  ASSERT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
  EXPECT_EQ(harness_->step(id, "charge").value("attempts", 0), 3);
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "succeeded");
  EXPECT_EQ(audited("step.retry"), 1);
  EXPECT_EQ(parked_gauge("charge"), "0");
}

TEST_F(ParkTest, ARetriedStepGetsAFreshAttemptBudgetAndCanParkAgain) {
  const auto id = parked_run();
  ASSERT_EQ(call("POST", step_url(id, "charge", "retry"), admin_).status, 202);
  // Still down: two more attempts (the step's budget again), then parked again.
  ASSERT_TRUE(wait_until([&] { return harness_->step(id, "charge").value("attempts", 0) == 4; }))
      << harness_->run(id).dump();
  ASSERT_TRUE(harness_->wait_status(id, "parked")) << harness_->run(id).dump();
  EXPECT_EQ(history_count(harness_->run(id), "parked", "charge"), 2);
}

TEST_F(ParkTest, SkipNeedsAReasonAndLetsTheDependentsRun) {
  const auto id = parked_run();
  EXPECT_EQ(call("POST", step_url(id, "charge", "skip"), operator_).status, 400);
  auto blank = call("POST", step_url(id, "charge", "skip"), operator_, R"({"reason": "  "})");
  EXPECT_EQ(blank.status, 400) << blank.body;
  EXPECT_THAT(blank.body, HasSubstr("reason"));
  EXPECT_EQ(call("POST", step_url(id, "charge", "skip"), reviewer_, R"({"reason": "x"})").status,
            403);
  EXPECT_EQ(harness_->step(id, "charge").value("status", ""), "parked");

  auto skipped = call("POST", step_url(id, "charge", "skip"), operator_,
                      R"({"reason": "claim sent by fax, ticket 4711"})");
  EXPECT_EQ(skipped.status, 202) << skipped.body;
  ASSERT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
  const Json charge = harness_->step(id, "charge");
  EXPECT_EQ(charge.value("status", ""), "skipped");
  EXPECT_EQ(charge.value("skip_reason", ""), "claim sent by fax, ticket 4711");
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "succeeded");
  EXPECT_EQ(audited("step.skip"), 1);
  EXPECT_EQ(scalar("SELECT detail->>'reason' FROM audit_event WHERE action = 'step.skip'"),
            "claim sent by fax, ticket 4711");
}

TEST_F(ParkTest, FailEndsTheRunAsExhaustionDidAndEmitsTheRunFailedEvent) {
  const auto id = parked_run();
  EXPECT_EQ(call("POST", step_url(id, "charge", "fail"), reviewer_).status, 403);
  auto failed = call("POST", step_url(id, "charge", "fail"), operator_);
  EXPECT_EQ(failed.status, 202) << failed.body;
  EXPECT_EQ(harness_->run_status(id), "failed");
  EXPECT_EQ(harness_->step(id, "charge").value("status", ""), "failed");
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "pending");
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'workflow.failed'"), "1");
  EXPECT_TRUE(wait_until([&] {
    return scalar(
               "SELECT count(*) FROM workflow_run WHERE workflow = 'on-failure' "
               "AND status = 'succeeded'") == "1";
  }));
  EXPECT_EQ(audited("step.fail"), 1);
  // A failed run is retried as before.
  outage_->up = true;
  EXPECT_EQ(call("POST", "/v1/runs/" + std::to_string(id) + "/retry", operator_).status, 202);
  EXPECT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
}

TEST_F(ParkTest, AParkedStepOutlivesARestart) {
  const auto id = parked_run();
  stop();
  serve();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(harness_->run_status(id), "parked");
  EXPECT_EQ(harness_->step(id, "charge").value("attempts", 0), 2);
  EXPECT_EQ(parked_gauge("charge"), "1");
  outage_->up = true;
  EXPECT_EQ(call("POST", step_url(id, "charge", "retry"), operator_).status, 202);
  EXPECT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
}

// An element of a for_each step parks alone: the elements that succeeded stay done, the step's
// own row and its dependents wait, and the operator acts on the element by its key
// (`charge[1]`, URL-encoded as charge%5B1%5D). The gauge counts it under the step's name.
TEST_F(ParkTest, AnElementOutOfAttemptsParksAloneAndAnOperatorRetriesIt) {
  const auto id = parked_element_run();
  EXPECT_EQ(harness_->step(id, "charge[1]").value("status", ""), "parked");
  EXPECT_EQ(harness_->step(id, "charge[1]").value("attempts", 0), 2);
  EXPECT_EQ(harness_->step(id, "charge[0]").value("status", ""), "succeeded");
  EXPECT_EQ(harness_->step(id, "charge[2]").value("status", ""), "succeeded");
  EXPECT_EQ(harness_->step(id, "charge").value("status", ""), "pending");
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "pending");
  auto parked = call("GET", "/v1/steps/parked", operator_);
  ASSERT_EQ(parked.status, 200) << parked.body;
  ASSERT_EQ(parked.json().at("steps").size(), 1U) << parked.body;
  EXPECT_EQ(parked.json()["steps"][0].value("step", ""), "charge[1]");
  EXPECT_EQ(parked_gauge("charge", "fan-parking"), "1");
  EXPECT_EQ(parked_gauge("charge[1]", "fan-parking"), "");

  EXPECT_EQ(call("POST", step_url(id, "charge%5Bx%5D", "retry"), operator_).status, 400);
  EXPECT_EQ(call("POST", step_url(id, "charge%5B7%5D", "retry"), operator_).status, 404);
  item_outage_->up = true;
  auto retried = call("POST", step_url(id, "charge%5B1%5D", "retry"), operator_);
  EXPECT_EQ(retried.status, 202) << retried.body;
  ASSERT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
  EXPECT_EQ(harness_->step(id, "charge[1]").value("attempts", 0), 3);
  EXPECT_EQ(harness_->step(id, "charge[0]").value("attempts", 0), 1);
  EXPECT_EQ(harness_->step(id, "charge").value("output", Json()),
            Json::parse(R"([{"item": "a"}, {"item": "down"}, {"item": "c"}])"));
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "succeeded");
  EXPECT_EQ(scalar("SELECT detail->>'step' FROM audit_event WHERE action = 'step.retry' AND "
                   "outcome = 'success'"),
            "charge[1]");
  EXPECT_EQ(parked_gauge("charge", "fan-parking"), "0");
}

// A skipped element is null in the step's output, and the step and its dependents go on.
TEST_F(ParkTest, ASkippedElementIsNullInTheStepsOutputAndTheDependentsRun) {
  const auto id = parked_element_run();
  auto skipped = call("POST", step_url(id, "charge%5B1%5D", "skip"), operator_,
                      R"({"reason": "receiver retired, bill sent by post"})");
  EXPECT_EQ(skipped.status, 202) << skipped.body;
  ASSERT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
  EXPECT_EQ(harness_->step(id, "charge[1]").value("status", ""), "skipped");
  EXPECT_EQ(harness_->step(id, "charge").value("output", Json()),
            Json::parse(R"([{"item": "a"}, null, {"item": "c"}])"));
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "succeeded");
}

// Failing a parked element fails its run, as an element out of attempts without park does.
TEST_F(ParkTest, AFailedElementFailsItsRun) {
  const auto id = parked_element_run();
  EXPECT_EQ(call("POST", step_url(id, "charge%5B1%5D", "fail"), operator_).status, 202);
  EXPECT_EQ(harness_->run_status(id), "failed");
  EXPECT_EQ(harness_->step(id, "charge[1]").value("status", ""), "failed");
  EXPECT_EQ(harness_->step(id, "notify").value("status", ""), "pending");
}

// Engine-only cases: what parks and what does not.
class ParkEngineTest : public PgTest {};

TEST_F(ParkEngineTest, ATimedOutStepParksWhenItsLastAttemptExpires) {
  EngineHarness h(dsn(), {R"(name: slow
on: [{ event: demo.slow }]
steps:
  call:
    handler: work
    input: { ms: 1500 }
    timeout: 100ms
    retry: { max_attempts: 1 }
    on_exhausted: park
)"});
  h.start();
  const auto id = h.start_run("demo.slow");
  ASSERT_TRUE(h.wait_status(id, "parked")) << h.run(id).dump();
  const Json run = h.run(id);
  // The dispatcher's expiry found it while the handler still held its thread.
  EXPECT_EQ(history_count(run, "timed_out", "call"), 1) << run.dump();
  EXPECT_EQ(history_count(run, "parked", "call"), 1) << run.dump();
  // The late finisher changes nothing.
  std::this_thread::sleep_for(std::chrono::milliseconds(1800));
  EXPECT_EQ(h.step(id, "call").value("status", ""), "parked");
  EXPECT_EQ(h.run_status(id), "parked");
}

TEST_F(ParkEngineTest, APermanentFailureStillFailsTheRun) {
  EngineHarness h(dsn(), {R"(name: broken
on: [{ event: demo.broken }]
on_exhausted: park
steps:
  a: { handler: fail, input: { message: bad input, permanent: true } }
)"});
  h.start();
  const auto id = h.start_run("demo.broken");
  ASSERT_TRUE(h.wait_status(id, "failed")) << h.run(id).dump();
  EXPECT_EQ(h.step(id, "a").value("status", ""), "failed");
}

}  // namespace
}  // namespace chartflow::testing
