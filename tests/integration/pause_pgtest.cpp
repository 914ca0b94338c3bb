// Pausing (issue #17 item 1): while a workflow or a run is paused no step of it is claimed;
// events still start runs, which queue; steps already running finish. Operators pause and
// resume through POST /v1/workflows/{name}/pause | resume and /v1/runs/{id}/pause | resume,
// each audited; other roles get 403. The pause is in the database, so it outlives a restart.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
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

using namespace std::chrono_literals;

// Counts its calls; while closed, each call waits until the test opens it (a step in flight).
class Gate : public Handler {
 public:
  StepOutcome run(StepContext&) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    ++calls_;
    return Completed{Json::object()};
  }
  void set_open(bool open) {
    std::lock_guard lock(mu_);
    open_ = open;
    cv_.notify_all();
  }
  bool wait_entered(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 20s, [&] { return entered_ >= n; });
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int entered_ = 0, calls_ = 0;
};

constexpr const char* kGated = R"(name: gated
on: [{ event: demo.gated }]
steps:
  first: { handler: gate }
  second: { handler: gate, needs: [first] }
)";

constexpr const char* kOther = R"(name: other
on: [{ event: demo.other }]
steps:
  only: { handler: noop }
)";

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds bound = 20s) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

class PauseTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    gate_ = std::make_shared<Gate>();
    auto handlers = std::make_shared<HandlerRegistry>();
    handlers->add("gate", gate_);
    runtime::EngineSettings harness_settings;
    harness_settings.workers = 0;
    harness_ = std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{kGated, kOther},
                                               handlers, harness_settings);
    operator_ = create_token(dsn(), "operator");
    reviewer_ = create_token(dsn(), "reviewer", std::string("Practitioner/x"));
    serve();
  }

  // A new process, as far as the database can tell.
  void serve() {
    runtime::EngineSettings settings;
    settings.workers = 2;
    // One step per claim: two gated steps in flight at once need a worker each.
    settings.batch_size = 1;
    settings.poll_interval = 100ms;
    served_ = std::make_unique<ServedEngine>(dsn(), *harness_, settings);
  }

  void stop() {
    gate_->set_open(true);
    served_.reset();
  }

  void TearDown() override {
    if (gate_) stop();
    harness_.reset();
    PgTest::TearDown();
  }

  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& token = "", const std::string& body = "") {
    return served_->call(method, target, token.empty() ? operator_ : token, body);
  }

  std::string step_status(std::int64_t run, const std::string& step) {
    return harness_->step(run, step).value("status", "");
  }

  std::int64_t audited(const std::string& action, const std::string& outcome = "success") {
    return std::stoll(scalar("SELECT count(*) FROM audit_event WHERE action = '" + action +
                             "' AND outcome = '" + outcome + "'"));
  }

  // The workflow's entry in GET /v1/workflows.
  Json workflow_entry(const std::string& name) {
    const auto r = call("GET", "/v1/workflows");
    EXPECT_EQ(r.status, 200) << r.body;
    const Json listed = Json::parse(r.body);
    for (const auto& w : listed.at("workflows"))
      if (w.at("name") == name) return w;
    return Json();
  }

  // A gauge's value for a workflow on /metrics ("" when absent).
  std::string gauge(const std::string& name, const std::string& workflow) {
    std::istringstream lines(call("GET", "/metrics").body);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with(name + "{") &&
          line.find("workflow=\"" + workflow + "\"") != std::string::npos)
        return line.substr(line.rfind(' ') + 1);
    return "";
  }

  std::shared_ptr<Gate> gate_;
  std::unique_ptr<EngineHarness> harness_;
  std::unique_ptr<ServedEngine> served_;
  std::string operator_, reviewer_;
};

TEST_F(PauseTest, APausedWorkflowQueuesItsRunsUntilResumedAndThePauseOutlivesARestart) {
  // Reviewers may not pause; nothing changes.
  EXPECT_EQ(call("POST", "/v1/workflows/gated/pause", reviewer_).status, 403);
  auto paused =
      call("POST", "/v1/workflows/gated/pause", "", R"({"reason": "insurer maintenance window"})");
  ASSERT_EQ(paused.status, 202) << paused.body;
  EXPECT_EQ(Json::parse(paused.body).at("in_flight"), 0);
  EXPECT_EQ(audited("workflow.pause"), 1);
  EXPECT_EQ(scalar("SELECT detail->>'reason' FROM audit_event WHERE action = 'workflow.pause'"),
            "insurer maintenance window");

  // Events still start runs; their steps are set aside, not run.
  std::vector<std::int64_t> runs;
  runs.reserve(4);
  for (int i = 0; i < 3; ++i) runs.push_back(harness_->start_run("demo.gated"));
  for (auto id : runs)
    ASSERT_TRUE(eventually([&] { return step_status(id, "first") == "paused"; }))
        << harness_->run(id).dump();
  // Another workflow is not held back by the pause.
  const auto other = harness_->start_run("demo.other");
  ASSERT_TRUE(harness_->wait_status(other, "succeeded"));
  EXPECT_EQ(gate_->calls(), 0);
  EXPECT_EQ(harness_->run_status(runs[0]), "running");
  const Json run = Json::parse(call("GET", "/v1/runs/" + std::to_string(runs[0])).body);
  EXPECT_EQ(run.at("workflow_paused").at("reason"), "insurer maintenance window");

  const Json entry = workflow_entry("gated");
  ASSERT_TRUE(entry.at("paused").is_object()) << entry.dump();
  EXPECT_EQ(entry.at("paused").at("queued_runs"), 3);
  EXPECT_EQ(entry.at("paused").at("paused_by"),
            scalar("SELECT actor_name || ' (' || actor || ')' FROM audit_event WHERE "
                   "action = 'workflow.pause'"));
  EXPECT_TRUE(workflow_entry("other").at("paused").is_null());
  EXPECT_EQ(gauge("chartflow_workflow_paused", "gated"), "1");
  EXPECT_EQ(gauge("chartflow_workflow_paused_queued_steps", "gated"), "3");
  EXPECT_EQ(gauge("chartflow_workflow_paused", "other"), "0");

  // A new process still holds the workflow: a run started after the restart is set aside too.
  stop();
  serve();
  const auto after_restart = harness_->start_run("demo.gated");
  ASSERT_TRUE(eventually([&] { return step_status(after_restart, "first") == "paused"; }));
  EXPECT_EQ(gate_->calls(), 0);
  EXPECT_EQ(call("POST", "/v1/workflows/gated/pause").status, 409);  // already paused

  EXPECT_EQ(call("POST", "/v1/workflows/gated/resume", reviewer_).status, 403);
  auto resumed = call("POST", "/v1/workflows/gated/resume");
  ASSERT_EQ(resumed.status, 202) << resumed.body;
  EXPECT_EQ(Json::parse(resumed.body).at("released"), 4);
  runs.push_back(after_restart);
  for (auto id : runs) EXPECT_TRUE(harness_->wait_status(id, "succeeded")) << id;
  EXPECT_EQ(gate_->calls(), 8);
  EXPECT_EQ(audited("workflow.resume"), 1);
  EXPECT_TRUE(workflow_entry("gated").at("paused").is_null());
  EXPECT_EQ(gauge("chartflow_workflow_paused", "gated"), "0");
  EXPECT_EQ(call("POST", "/v1/workflows/gated/resume").status, 409);  // not paused
  EXPECT_EQ(audited("workflow.resume", "failure"), 1);
}

TEST_F(PauseTest, AStepInFlightFinishesAndTheStepsAfterItWait) {
  gate_->set_open(false);
  const auto id = harness_->start_run("demo.gated");
  ASSERT_TRUE(gate_->wait_entered(1));
  auto paused = call("POST", "/v1/workflows/gated/pause");
  ASSERT_EQ(paused.status, 202) << paused.body;
  EXPECT_EQ(Json::parse(paused.body).at("in_flight"), 1);
  gate_->set_open(true);
  ASSERT_TRUE(eventually([&] { return step_status(id, "second") == "paused"; }))
      << harness_->run(id).dump();
  EXPECT_EQ(step_status(id, "first"), "succeeded");
  EXPECT_EQ(gate_->calls(), 1);
  ASSERT_EQ(call("POST", "/v1/workflows/gated/resume").status, 202);
  EXPECT_TRUE(harness_->wait_status(id, "succeeded"));
  EXPECT_EQ(gate_->calls(), 2);
}

TEST_F(PauseTest, PausingOneRunLeavesTheOthersRunning) {
  gate_->set_open(false);
  const auto held = harness_->start_run("demo.gated");
  const auto free = harness_->start_run("demo.gated");
  ASSERT_TRUE(gate_->wait_entered(2));
  const std::string held_url = "/v1/runs/" + std::to_string(held);
  EXPECT_EQ(call("POST", held_url + "/pause", reviewer_).status, 403);
  auto paused = call("POST", held_url + "/pause", "", R"({"reason": "chart under correction"})");
  ASSERT_EQ(paused.status, 202) << paused.body;
  EXPECT_EQ(call("POST", held_url + "/pause").status, 409);
  gate_->set_open(true);
  ASSERT_TRUE(harness_->wait_status(free, "succeeded"));
  ASSERT_TRUE(eventually([&] { return step_status(held, "second") == "paused"; }));
  const Json run = Json::parse(call("GET", held_url).body);
  EXPECT_EQ(run.at("status"), "running");
  EXPECT_EQ(run.at("paused").at("reason"), "chart under correction");
  EXPECT_EQ(audited("run.pause"), 1);

  // An ended run does not pause; a run that is not paused does not resume.
  EXPECT_EQ(call("POST", "/v1/runs/" + std::to_string(free) + "/pause").status, 409);
  EXPECT_EQ(call("POST", "/v1/runs/" + std::to_string(free) + "/resume").status, 409);
  EXPECT_EQ(call("POST", "/v1/runs/999999/pause").status, 404);

  ASSERT_EQ(call("POST", held_url + "/resume").status, 202);
  EXPECT_TRUE(harness_->wait_status(held, "succeeded"));
  EXPECT_TRUE(Json::parse(call("GET", held_url).body).at("paused").is_null());
  EXPECT_EQ(gate_->calls(), 4);
  EXPECT_EQ(audited("run.resume"), 1);
}

TEST_F(PauseTest, ResumingARunWhoseWorkflowIsPausedKeepsItQueued) {
  ASSERT_EQ(call("POST", "/v1/workflows/gated/pause").status, 202);
  const auto id = harness_->start_run("demo.gated");
  ASSERT_TRUE(eventually([&] { return step_status(id, "first") == "paused"; }));
  const std::string url = "/v1/runs/" + std::to_string(id);
  ASSERT_EQ(call("POST", url + "/pause").status, 202);
  ASSERT_EQ(call("POST", url + "/resume").status, 202);
  // Resuming the workflow now releases it: a probe run of another workflow proves claims ran.
  const auto probe = harness_->start_run("demo.other");
  ASSERT_TRUE(harness_->wait_status(probe, "succeeded"));
  EXPECT_EQ(step_status(id, "first"), "paused");
  // Kept aside by the resume itself, not given back and set aside again by the next claim.
  const std::string held_count =
      "SELECT count(*) FROM run_history WHERE type = 'held' AND run_id = " + std::to_string(id);
  EXPECT_EQ(scalar(held_count), "1");
  // The other way round: a run paused on its own stays paused when its workflow resumes.
  ASSERT_EQ(call("POST", url + "/pause").status, 202);
  ASSERT_EQ(call("POST", "/v1/workflows/gated/resume").status, 202);
  const auto probe2 = harness_->start_run("demo.other");
  ASSERT_TRUE(harness_->wait_status(probe2, "succeeded"));
  EXPECT_EQ(step_status(id, "first"), "paused");
  EXPECT_EQ(scalar(held_count), "1");
  EXPECT_EQ(gate_->calls(), 0);
  ASSERT_EQ(call("POST", url + "/resume").status, 202);
  EXPECT_TRUE(harness_->wait_status(id, "succeeded"));
}

// A claim that is setting a paused workflow's step aside, and a resume at the same moment: the
// resume waits for the claim to commit and then releases the step, instead of missing it (it
// read the step as still ready) and leaving it paused with no pause in force.
TEST_F(PauseTest, AResumeRacingAClaimReleasesTheStepTheClaimSetAside) {
  stop();  // no workers: the test is the only claimer
  store::Store::PauseCommand command;
  std::string message;
  ASSERT_EQ(harness_->store().pause_workflow("gated", command, &message),
            store::Store::CommandResult::kOk);
  const auto id = harness_->start_run("demo.gated");
  ASSERT_EQ(step_status(id, "first"), "ready");

  pqxx::connection claimer(dsn());
  pqxx::work claim(claimer);
  const auto claimed = claim.exec("SELECT count(*) FROM step_claim_rows('race', 60000, ARRAY[" +
                                  std::to_string(id) + "]::bigint[], ARRAY['first'], false)");
  ASSERT_EQ(claimed[0][0].as<int>(), 0);  // set aside, not claimed

  std::atomic<bool> resumed{false};
  store::Store::PauseCommand resume;
  std::thread resumer([&] {
    std::string m;
    store::Store own(dsn());  // a connection of its own, as another process has
    EXPECT_EQ(own.resume_workflow("gated", resume, &m), store::Store::CommandResult::kOk) << m;
    resumed = true;
  });
  // Commit the claim once the resume has either finished or queued behind its lock.
  EXPECT_TRUE(eventually([&] {
    return resumed || scalar(
                          "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                          "'Lock' AND datname = current_database()") != "0";
  }));
  claim.commit();
  resumer.join();
  EXPECT_EQ(resume.released, 1);
  EXPECT_EQ(step_status(id, "first"), "ready");
}

TEST_F(PauseTest, APausedRunCanBeCancelled) {
  ASSERT_EQ(call("POST", "/v1/workflows/gated/pause").status, 202);
  const auto id = harness_->start_run("demo.gated");
  ASSERT_TRUE(eventually([&] { return step_status(id, "first") == "paused"; }));
  const std::string url = "/v1/runs/" + std::to_string(id);
  ASSERT_EQ(call("POST", url + "/pause").status, 202);
  ASSERT_EQ(call("POST", url + "/cancel").status, 202);
  EXPECT_EQ(harness_->run_status(id), "cancelled");
  EXPECT_EQ(step_status(id, "first"), "cancelled");
  EXPECT_EQ(scalar("SELECT count(*) FROM run_pause"), "0");
}

TEST_F(PauseTest, BadNamesAndUnknownWorkflowsAreRefused) {
  const auto bad = call("POST", "/v1/workflows/Not%20A%20Name/pause");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("workflow must be a workflow name"), std::string::npos) << bad.body;
  const auto unknown = call("POST", "/v1/workflows/no-such-workflow/pause");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("no workflow named no-such-workflow"), std::string::npos);
  EXPECT_EQ(call("POST", "/v1/workflows/gated/pause", "", R"({"reason": 5})").status, 400);
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_pause"), "0");
}

}  // namespace
}  // namespace chartflow::testing
