// Moving runs to a new workflow version (issue #17 item 6): POST /v1/workflows/{name}/migrate.
// Runs waiting at a signal in version 1 move to version 2, which renames the waiting step (by
// the request's map), adds steps after and beside it and drops a step that had not started. The
// dry run's plan is checked against what the move then did to the runs' rows, and the moved run
// completes along version 2's graph. Runs that cannot move (a started step version 2 lacks, a
// step running right now) are left exactly as they were. Moves are audited; reviewers get 403.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>

#include "runtime/engine.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/served_engine.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

// Holds its step `running` until the test opens it: a step a worker is in the middle of. In a
// bulkhead of its own, so it holds no batch of other steps with it.
class Gate : public Handler {
 public:
  std::string bulkhead() const override { return "gate"; }
  StepOutcome run(StepContext&) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    return Completed{Json::object()};
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool open_ = false;
};

// `slow` runs (and holds) only for events that ask for it; every other run skips it.
constexpr const char* kV1 = R"(name: moving
on: [{ event: demo.move }]
steps:
  intake: { handler: noop }
  review: { handler: wait_signal, needs: [intake], input: { signal: decision } }
  poke:   { handler: wait_signal, input: { signal: poke } }
  legacy: { handler: noop, needs: [poke] }
  notify: { handler: noop, needs: [review] }
  slow:   { handler: gate, when: { path: /event/slow, equals: true } }
)";

// intake (finished in every run moved) is now receive; archive comes after review and notify
// after archive; welcome is new and needs only receive, so it runs as soon as a run moves;
// legacy is gone. review keeps its name: it has started and not finished in the runs moved, and
// such a step may not be renamed.
constexpr const char* kV2 = R"(name: moving
on: [{ event: demo.move }]
steps:
  receive: { handler: noop }
  review:  { handler: wait_signal, needs: [receive], input: { signal: decision } }
  poke:    { handler: wait_signal, input: { signal: poke } }
  archive: { handler: noop, needs: [review] }
  notify:  { handler: noop, needs: [archive] }
  welcome: { handler: noop, needs: [receive] }
  slow:    { handler: gate, when: { path: /event/slow, equals: true } }
)";

constexpr const char* kMove = R"({"from": 1, "to": 2, "map": {"intake": "receive"}, )";

class WorkflowMigrateTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    gate_ = std::make_shared<Gate>();
    auto handlers = std::make_shared<HandlerRegistry>();
    handlers->add("gate", gate_);
    runtime::EngineSettings harness_settings;
    harness_settings.workers = 0;
    harness_ = std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{kV1}, handlers,
                                               harness_settings);
    operator_ = create_token(dsn(), "operator");
    reviewer_ = create_token(dsn(), "reviewer", std::string("Practitioner/x"));
    runtime::EngineSettings settings;
    settings.workers = 3;
    settings.poll_interval = std::chrono::milliseconds(100);
    served_ = std::make_unique<ServedEngine>(dsn(), *harness_, settings);
  }

  void TearDown() override {
    if (gate_) gate_->open();
    served_.reset();
    harness_.reset();
    PgTest::TearDown();
  }

  HttpResponse call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "") {
    return served_->call(method, target, token, body);
  }
  HttpResponse migrate(const std::string& body, const std::string& token = "") {
    return call("POST", "/v1/workflows/moving/migrate", token.empty() ? operator_ : token, body);
  }
  void signal(std::int64_t run, const std::string& name) {
    const auto r =
        call("POST", "/v1/runs/" + std::to_string(run) + "/signal/" + name, operator_, "{}");
    ASSERT_EQ(r.status, 202) << r.body;
  }
  std::string status_of(std::int64_t run, const std::string& step) {
    return harness_->step(run, step).value("status", "");
  }
  bool wait_step(std::int64_t run, const std::string& step, const std::string& status) {
    return wait_until([&] { return status_of(run, step) == status; });
  }
  // Every column of a run's row and its steps' rows that a move could change.
  std::string snapshot(std::int64_t run) {
    const auto id = std::to_string(run);
    return scalar(
        "SELECT (SELECT row_to_json(w)::text FROM (SELECT workflow_version_id, status, "
        "remaining_steps FROM workflow_run WHERE id = " +
        id +
        ") w) || (SELECT "
        "json_agg(s ORDER BY step_key)::text FROM (SELECT step_key, handler, status, "
        "needs, pending_needs, max_attempts, attempt FROM step_run WHERE run_id = " +
        id + ") s)");
  }
  std::int64_t version_id(int version) {
    return std::stoll(
        scalar("SELECT id FROM workflow_version WHERE name = 'moving' AND "
               "version = " +
               std::to_string(version)));
  }
  // A run of version 1 waiting at review (and at poke), with slow skipped.
  std::int64_t waiting_run() {
    const auto id = harness_->start_run("demo.move");
    EXPECT_TRUE(wait_step(id, "review", "waiting")) << harness_->run(id).dump();
    EXPECT_TRUE(wait_step(id, "slow", "skipped")) << harness_->run(id).dump();
    EXPECT_TRUE(wait_step(id, "poke", "waiting")) << harness_->run(id).dump();
    return id;
  }

  std::shared_ptr<Gate> gate_;
  std::unique_ptr<EngineHarness> harness_;
  std::unique_ptr<ServedEngine> served_;
  std::string operator_, reviewer_;
};

const Json& entry_of(const Json& report, std::int64_t run) {
  for (const auto& r : report.at("runs"))
    if (r.value("run_id", std::int64_t{0}) == run) return r;
  static const Json kNone;
  ADD_FAILURE() << "run " << run << " is not in " << report.dump();
  return kNone;
}

TEST_F(WorkflowMigrateTest, WaitingRunsMoveAsTheDryRunSaidAndFinishAlongTheNewVersion) {
  const auto moving_a = waiting_run();
  const auto moving_b = waiting_run();
  // legacy has run: version 2 has no such step, so this run stays.
  const auto poked = waiting_run();
  signal(poked, "poke");
  ASSERT_TRUE(wait_step(poked, "legacy", "succeeded")) << harness_->run(poked).dump();
  // slow is held running by its worker.
  const auto busy = harness_->start_run("demo.move", {{"slow", true}});
  ASSERT_TRUE(wait_step(busy, "slow", "running")) << harness_->run(busy).dump();
  ASSERT_TRUE(wait_step(busy, "review", "waiting")) << harness_->run(busy).dump();
  harness_->publish({kV2});
  const std::string poked_before = snapshot(poked), busy_before = snapshot(busy);
  const std::string moving_before = snapshot(moving_a);

  auto dry = migrate(std::string(kMove) + R"("dry_run": true})");
  ASSERT_EQ(dry.status, 200) << dry.body;
  const Json plan = dry.json();
  EXPECT_EQ(plan.value("candidates", 0), 4) << dry.body;
  EXPECT_EQ(plan.value("movable", 0), 2) << dry.body;
  EXPECT_EQ(plan.value("refused", 0), 2) << dry.body;
  EXPECT_EQ(plan.value("moved", -1), 0) << dry.body;
  const Json& a = entry_of(plan, moving_a);
  EXPECT_TRUE(a.value("movable", false)) << a.dump();
  EXPECT_EQ(a.at("kept"), Json::parse(R"([{"step": "receive", "from": "intake",
      "status": "succeeded"}, {"step": "review", "status": "waiting"},
      {"step": "poke", "status": "waiting"}, {"step": "slow", "status": "skipped"}])"))
      << a.dump();
  EXPECT_EQ(a.at("updated"), Json::parse(R"([{"step": "notify", "status": "pending"}])"));
  EXPECT_EQ(a.at("added"), Json::parse(R"([{"step": "archive", "status": "pending"},
      {"step": "welcome", "status": "ready"}])"));
  EXPECT_EQ(a.at("dropped"), Json::parse(R"(["legacy"])"));
  EXPECT_EQ(a.at("next"), Json::parse(R"(["welcome"])"));
  EXPECT_EQ(a.value("remaining_steps", 0), 5);
  Json b = entry_of(plan, moving_b);
  b["run_id"] = moving_a;
  EXPECT_EQ(b, a);
  const Json& p = entry_of(plan, poked);
  EXPECT_FALSE(p.value("movable", true));
  EXPECT_THAT(p.value("reason", ""), HasSubstr("step legacy is succeeded"));
  EXPECT_THAT(p.value("reason", ""), HasSubstr("version 2 has no step legacy"));
  EXPECT_EQ(entry_of(plan, busy).value("reason", ""),
            "step slow is running; move it when it is not");
  // A dry run changes nothing.
  EXPECT_EQ(snapshot(moving_a), moving_before);
  // The command line prints the same plan, a run a line (and its steps for one that moves).
  const auto cli = run_command(
      "CHARTFLOW_TOKEN=" + operator_ + " CHARTFLOW_SERVER=http://127.0.0.1:" +
      std::to_string(served_->port()) + " " + CHARTFLOW_BINARY +
      " workflows migrate --workflow moving --from 1 --to 2 --map intake=receive --dry-run");
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_THAT(cli.output, HasSubstr("moving: version 1 -> 2 (dry run: nothing changes)\n"));
  EXPECT_THAT(cli.output, HasSubstr("run " + std::to_string(moving_a) +
                                    ": can move; next: welcome\n    kept: receive (was "
                                    "intake), review, poke, slow; updated: notify; added: archive, "
                                    "welcome; dropped: legacy\n"));
  EXPECT_THAT(cli.output, HasSubstr("run " + std::to_string(busy) +
                                    ": stays: step slow is running; move it when it is not\n"));
  EXPECT_THAT(cli.output, HasSubstr("would move 2 of 4 run(s); 2 stay at version 1\n"));
  EXPECT_EQ(snapshot(moving_a), moving_before);

  // Reviewers may not move runs, nor plan it.
  EXPECT_EQ(migrate(std::string(kMove) + R"("dry_run": false})", reviewer_).status, 403);
  EXPECT_EQ(migrate(std::string(kMove) + R"("dry_run": true})", reviewer_).status, 403);
  EXPECT_EQ(snapshot(moving_a), moving_before);

  auto moved = migrate(std::string(kMove) + R"("dry_run": false})");
  ASSERT_EQ(moved.status, 200) << moved.body;
  const Json done = moved.json();
  EXPECT_EQ(done.value("moved", 0), 2) << moved.body;
  EXPECT_EQ(done.value("refused", 0), 2) << moved.body;
  // The move did what the dry run said, run by run.
  EXPECT_EQ(done.at("runs"), plan.at("runs"));

  // And the rows say the same: each planned step exists with the planned status (a step that
  // was to run next has run since), dropped steps are gone, the run is at version 2.
  for (const auto run : {moving_a, moving_b}) {
    const Json& e = entry_of(plan, run);
    const auto id = std::to_string(run);
    EXPECT_EQ(std::stoll(scalar("SELECT workflow_version_id FROM workflow_run WHERE id = " + id)),
              version_id(2));
    std::set<std::string> planned;
    for (const char* kind : {"kept", "updated", "added"})
      for (const auto& s : e.at(kind)) {
        const std::string step = s.at("step");
        planned.insert(step);
        const bool next =
            std::find(e.at("next").begin(), e.at("next").end(), step) != e.at("next").end();
        if (next) {
          EXPECT_TRUE(wait_step(run, step, "succeeded")) << harness_->run(run).dump();
        } else {
          EXPECT_EQ(status_of(run, step), s.at("status").get<std::string>()) << step;
        }
      }
    EXPECT_EQ(scalar("SELECT string_agg(step_key, ',' ORDER BY step_key) FROM step_run WHERE "
                     "run_id = " +
                     id),
              "archive,notify,poke,receive,review,slow,welcome");
    EXPECT_EQ(planned.size(), 7U);
    // archive and notify each wait for one step (review, archive) not yet done.
    EXPECT_EQ(scalar("SELECT string_agg(step_key || '=' || pending_needs, ',' ORDER BY step_key) "
                     "FROM step_run WHERE run_id = " +
                     id + " AND status = 'pending'"),
              "archive=1,notify=1");
    EXPECT_EQ(scalar("SELECT needs::text FROM step_run WHERE run_id = " + id +
                     " AND step_key = 'notify'"),
              R"(["archive"])");
    EXPECT_TRUE(wait_until([&] {
      return scalar("SELECT remaining_steps FROM workflow_run WHERE id = " + id) ==
             std::to_string(e.value("remaining_steps", 0) - 1);  // welcome has succeeded
    }));
    EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'migrated' AND run_id = " + id +
                     " AND detail->>'from_version' = '1' AND detail->>'to_version' = '2'"),
              "1");
  }
  // The runs that could not move are exactly as they were.
  EXPECT_EQ(snapshot(poked), poked_before);
  EXPECT_EQ(snapshot(busy), busy_before);
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'migrated' AND run_id IN (" +
                   std::to_string(poked) + ", " + std::to_string(busy) + ")"),
            "0");

  // The moved run finishes along version 2: review, then archive, then notify.
  signal(moving_a, "decision");
  signal(moving_a, "poke");
  ASSERT_TRUE(harness_->wait_status(moving_a, "succeeded")) << harness_->run(moving_a).dump();
  for (const char* step : {"receive", "review", "poke", "archive", "notify", "welcome"})
    EXPECT_EQ(status_of(moving_a, step), "succeeded") << step;
  const auto started_at = [&](const char* step) {
    return std::stoll(
        scalar("SELECT min(id) FROM run_history WHERE type = 'started' AND run_id = " +
               std::to_string(moving_a) + " AND step = '" + step + "'"));
  };
  EXPECT_LT(started_at("archive"), started_at("notify"));
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE run_id = " + std::to_string(moving_a) +
                   " AND step = 'legacy'"),
            "0");

  // Audited: each run moved in its own transaction, and the request with its counts.
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_event WHERE action = 'run.migrate' AND outcome = "
                   "'success'"),
            "2");
  EXPECT_EQ(scalar("SELECT detail->>'moved' || '/' || (detail->>'refused') || '/' || "
                   "(detail->>'candidates') FROM audit_event WHERE action = 'workflow.migrate'"),
            "2/2/4");

  // Once its step has finished, the busy run moves too.
  gate_->open();
  ASSERT_TRUE(wait_step(busy, "slow", "succeeded")) << harness_->run(busy).dump();
  auto again = migrate(std::string(kMove) + R"("dry_run": false})");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json().value("moved", 0), 1) << again.body;
  EXPECT_EQ(std::stoll(scalar("SELECT workflow_version_id FROM workflow_run WHERE id = " +
                              std::to_string(busy))),
            version_id(2));
}

// A parked run moves too: its parked step keeps waiting for the operator, whose skip then lets
// version 2's steps after it run. Renaming the parked step is refused: a retry under another
// name would not find what the first attempts did (a bill keyed by run and step, sent again).
TEST_F(WorkflowMigrateTest, AParkedRunMovesAndItsOperatorDecisionFollowsTheNewVersion) {
  harness_->publish({R"(name: parkmove
on: [{ event: demo.parkmove }]
on_exhausted: park
steps:
  charge: { handler: fail, retry: { max_attempts: 1 } }
  notify: { handler: noop, needs: [charge] }
)"});
  const auto id = harness_->start_run("demo.parkmove");
  ASSERT_TRUE(harness_->wait_status(id, "parked")) << harness_->run(id).dump();
  harness_->publish({R"(name: parkmove
on: [{ event: demo.parkmove }]
on_exhausted: park
steps:
  charge:  { handler: fail, retry: { max_attempts: 1 } }
  receipt: { handler: noop, needs: [charge] }
  notify:  { handler: noop, needs: [receipt] }
)"});
  auto renamed = call("POST", "/v1/workflows/parkmove/migrate", operator_,
                      R"({"from": 1, "to": 2, "map": {"charge": "receipt"}, "dry_run": false})");
  ASSERT_EQ(renamed.status, 200) << renamed.body;
  EXPECT_EQ(renamed.json().value("moved", -1), 0) << renamed.body;
  EXPECT_THAT(entry_of(renamed.json(), id).value("reason", ""),
              HasSubstr("step charge is parked: a step that has started and not finished keeps "
                        "its name"));
  EXPECT_EQ(harness_->step(id, "receipt"), Json()) << harness_->run(id).dump();
  auto moved = call("POST", "/v1/workflows/parkmove/migrate", operator_,
                    R"({"from": 1, "to": 2, "dry_run": false})");
  ASSERT_EQ(moved.status, 200) << moved.body;
  const Json report = moved.json();
  const Json& e = entry_of(report, id);
  EXPECT_EQ(e.at("kept"), Json::parse(R"([{"step": "charge", "status": "parked"}])"));
  EXPECT_EQ(e.at("added"), Json::parse(R"([{"step": "receipt", "status": "pending"}])"));
  EXPECT_EQ(harness_->run_status(id), "parked");
  EXPECT_EQ(status_of(id, "charge"), "parked");

  auto skipped = call("POST", "/v1/runs/" + std::to_string(id) + "/steps/charge/skip", operator_,
                      R"({"reason": "billed by hand"})");
  ASSERT_EQ(skipped.status, 202) << skipped.body;
  ASSERT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
  EXPECT_EQ(status_of(id, "receipt"), "succeeded");
  EXPECT_EQ(status_of(id, "notify"), "succeeded");
}

TEST_F(WorkflowMigrateTest, BadRequestsAreRefusedNamingTheProblem) {
  const auto run = waiting_run();
  harness_->publish({kV2});
  const std::string before = snapshot(run);
  const auto refused = [&](const std::string& body, int status, const std::string& says) {
    auto r = migrate(body);
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
    EXPECT_THAT(r.body, HasSubstr(says)) << body;
  };
  refused(R"({"from": 1, "to": 1, "dry_run": false})", 400, "same version");
  refused(R"({"from": 1, "to": 7, "dry_run": false})", 404, "has no version 7");
  refused(R"({"from": 5, "to": 7, "dry_run": true})", 404, "has no version 5 and 7");
  refused(R"({"from": 1, "dry_run": true})", 400, "to is required");
  refused(R"({"from": "1", "to": 2})", 400, "from must be a version number");
  refused(R"({"from": 1, "to": 2, "map": {"nosuch": "receive"}})", 400,
          "the old version has no step nosuch");
  refused(R"({"from": 1, "to": 2, "map": {"intake": "nosuch"}})", 400,
          "the new version has no step nosuch");
  refused(R"({"from": 1, "to": 2, "map": {"review": "poke"}})", 400, "already has");
  refused(R"({"from": 1, "to": 2, "dry_run": "yes"})", 400, "dry_run must be");
  refused(R"({"from": 1, "to": 2, "mapping": {}})", 400, "unknown field mapping");
  auto unknown = call("POST", "/v1/workflows/nosuch/migrate", operator_, R"({"from": 1, "to": 2})");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  // Without the map, version 2 has no step intake for the finished one: the plan says so.
  auto unmapped = migrate(R"({"from": 1, "to": 2, "dry_run": true})");
  ASSERT_EQ(unmapped.status, 200) << unmapped.body;
  EXPECT_THAT(entry_of(unmapped.json(), run).value("reason", ""),
              HasSubstr("step intake is succeeded and version 2 has no step intake"));
  // A waiting step may not be renamed: the doctor's review is found by its run and step.
  auto waiting = migrate(
      R"({"from": 1, "to": 2, "map": {"intake": "receive", "review": "archive"}, "dry_run": true})");
  ASSERT_EQ(waiting.status, 200) << waiting.body;
  EXPECT_THAT(entry_of(waiting.json(), run).value("reason", ""),
              HasSubstr("step review is waiting: a step that has started and not finished"));
  EXPECT_EQ(snapshot(run), before);
  // Refused requests are on the record unless they were plainly dry runs (which change nothing):
  // the two moves and the one whose dry_run was not a boolean.
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_event WHERE action = 'workflow.migrate' AND "
                   "outcome = 'failure'"),
            "3");
}

}  // namespace
}  // namespace chartflow::testing
