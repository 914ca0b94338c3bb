// Issue #17 item 3, the engine's side of reprocessing: which runs a selection covers, the dry
// run's per-step forecast from Handler::preview_rerun, a job started batch by batch (each new
// run of the latest version for the original event, its handlers told by StepContext::rerun),
// cancelled between batches, and carried on by the next engine after a restart. The chart
// handlers' forecasts against what they do are in handlers/reprocess_pgtest.cpp.
#include <gtest/gtest.h>

#include <mutex>

#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow {
namespace {

using chartflow::testing::EngineHarness;
using chartflow::testing::wait_until;

const char* const kWorkflow = R"(
name: rp
on: [{ event: demo.rp }]
steps:
  first: { handler: noop }
  charge: { handler: charge, needs: [first], retry: { max_attempts: 1 } }
)";

// Fails when the event says so; a re-run records the flags it was given, and previews one
// "charge" effect per run: sent again with resend, else skipped.
class ChargeHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    const Json& rerun = ctx.rerun();
    if (!rerun.empty()) {
      std::lock_guard lock(mu_);
      reruns_.push_back({{"run_id", ctx.run_id()}, {"rerun", rerun}});
      return Completed{};
    }
    if (ctx.event().value("fail", false)) return Fail{"asked to fail", true};
    return Completed{};
  }
  std::optional<Json> preview_rerun(Sql&, const RerunPreview& p) const override {
    return Json::array({{{"effect", "charge"},
                         {"action", p.flags.value("resend", false) ? "resend" : "skip"},
                         {"count", 1}}});
  }
  std::vector<Json> reruns() {
    std::lock_guard lock(mu_);
    return reruns_;
  }

 private:
  std::mutex mu_;
  std::vector<Json> reruns_;
};

class ReprocessTest : public chartflow::testing::PgTest {
 protected:
  std::unique_ptr<EngineHarness> harness(const std::shared_ptr<ChargeHandler>& charge) {
    auto extra = std::make_shared<HandlerRegistry>();
    extra->add("charge", charge);
    return std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{kWorkflow}, extra);
  }

  // Three ended runs: c1 succeeded, c2 failed at charge, c1 failed at charge.
  std::vector<std::int64_t> ended_runs(EngineHarness& h) {
    std::vector<std::int64_t> ids;
    for (const auto& [chart, fail] :
         std::vector<std::pair<std::string, bool>>{{"c1", false}, {"c2", true}, {"c1", true}}) {
      EventInput ev;
      ev.type = "demo.rp";
      ev.body = {{"chart_id", chart}, {"fail", fail}};
      ev.subject = chart;
      ids.push_back(h.engine().ingest(ev).run_ids.at(0));
    }
    h.start();
    for (const auto id : ids) EXPECT_TRUE(h.wait_status(id, ""));
    h.stop();
    return ids;
  }

  static runtime::ReprocessRequest select(Json fields) {
    runtime::ReprocessRequest r;
    r.selection.workflow = fields.value("workflow", "rp");
    if (fields.contains("from")) r.selection.from = fields["from"].get<std::string>();
    if (fields.contains("to")) r.selection.to = fields["to"].get<std::string>();
    if (fields.contains("status"))
      r.selection.statuses = fields["status"].get<std::vector<std::string>>();
    if (fields.contains("chart_id")) r.selection.subject = fields["chart_id"].get<std::string>();
    if (fields.contains("failed_step"))
      r.selection.failed_step = fields["failed_step"].get<std::string>();
    r.resend = fields.value("resend", false);
    r.batch_size = fields.value("batch_size", 50);
    return r;
  }

  std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }
};

TEST_F(ReprocessTest, TheSelectionCoversWhatItSaysAndTheDryRunAsksEachStepsHandler) {
  auto charge = std::make_shared<ChargeHandler>();
  auto h = harness(charge);
  const auto ids = ended_runs(*h);
  auto& engine = h->engine();
  auto runs = [&](Json fields) {
    return engine.reprocess_preview(select(fields)).value("runs", -1);
  };
  EXPECT_EQ(runs(Json::object()), 3);
  EXPECT_EQ(runs({{"status", Json::array({"failed"})}}), 2);
  EXPECT_EQ(runs({{"status", Json::array({"failed", "succeeded"})}}), 3);
  EXPECT_EQ(runs({{"chart_id", "c1"}}), 2);
  EXPECT_EQ(runs({{"failed_step", "charge"}}), 2);
  EXPECT_EQ(runs({{"failed_step", "first"}}), 0);
  EXPECT_EQ(runs({{"chart_id", "c1"}, {"failed_step", "charge"}}), 1);
  EXPECT_EQ(runs({{"to", "2000-01-01T00:00:00Z"}}), 0) << "created before 2000";
  EXPECT_EQ(runs({{"from", "2000-01-01T00:00:00Z"}}), 3) << "no window limit";
  EXPECT_THROW(engine.reprocess_preview(select({{"workflow", "nope"}})),
               runtime::ReprocessRejected);

  const Json dry = engine.reprocess_preview(select({{"status", Json::array({"failed"})}}));
  EXPECT_EQ(dry.value("charts", 0), 2);
  EXPECT_EQ(dry.at("run_ids"), Json::array({ids[1], ids[2]}));
  EXPECT_EQ(dry.at("chart_ids"), Json::array({"c1", "c2"}));
  ASSERT_EQ(dry.at("effects").size(), 1U) << dry.dump();
  EXPECT_EQ(dry["effects"][0], (Json{{"step", "charge"},
                                     {"effect", "charge"},
                                     {"action", "skip"},
                                     {"count", 2},
                                     {"runs", 2}}));
  EXPECT_EQ(engine.reprocess_preview(select({{"resend", true}}))["effects"][0].value("action", ""),
            "resend");
  // A dry run writes nothing.
  EXPECT_EQ(count("SELECT count(*) FROM reprocess_job"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM workflow_run"), 3);
}

TEST_F(ReprocessTest, ACancelStopsFurtherBatches) {
  auto charge = std::make_shared<ChargeHandler>();
  auto h = harness(charge);
  ended_runs(*h);
  auto& engine = h->engine();
  const Json job = engine.start_reprocess(select({{"batch_size", 1}}), "test");
  const std::int64_t id = job.value("id", 0);
  EXPECT_EQ(job.value("total", 0), 3);
  EXPECT_EQ(job.value("status", ""), "running");
  EXPECT_EQ(engine.reprocess_batch(), 1);
  EXPECT_EQ(engine.reprocess_job(id)->value("started", 0), 1);
  std::string message;
  EXPECT_EQ(engine.cancel_reprocess(id, &message), runtime::Engine::CommandResult::kOk);
  EXPECT_EQ(engine.reprocess_batch(), -1) << "a cancelled job starts nothing more";
  const Json after = *engine.reprocess_job(id);
  EXPECT_EQ(after.value("status", ""), "cancelled");
  EXPECT_EQ(after.value("started", 0), 1);
  EXPECT_EQ(count("SELECT count(*) FROM workflow_run"), 4);
  EXPECT_EQ(engine.cancel_reprocess(id, &message), runtime::Engine::CommandResult::kConflict);
  EXPECT_EQ(engine.cancel_reprocess(id + 1000, &message),
            runtime::Engine::CommandResult::kNotFound);
}

TEST_F(ReprocessTest, AJobOutlivesItsEngineAndItsRunsKnowTheyReprocess) {
  auto charge = std::make_shared<ChargeHandler>();
  std::int64_t id = 0;
  std::vector<std::int64_t> ids;
  {
    auto h = harness(charge);
    ids = ended_runs(*h);
    auto request = select({{"batch_size", 2}, {"resend", true}});
    id = h->engine().start_reprocess(request, "test").value("id", 0);
    EXPECT_EQ(h->engine().reprocess_batch(), 2);
  }  // the engine goes away between batches
  EXPECT_EQ(count("SELECT started FROM reprocess_job WHERE id = " + std::to_string(id)), 2);

  auto h = harness(charge);
  h->start();  // its dispatcher carries the job on
  ASSERT_TRUE(
      wait_until([&] { return h->engine().reprocess_job(id)->value("status", "") == "done"; },
                 std::chrono::seconds(20)));
  EXPECT_EQ(h->engine().reprocess_job(id)->value("started", 0), 3);
  ASSERT_TRUE(wait_until([&] { return charge->reruns().size() == 3; }, std::chrono::seconds(20)));
  h->stop();
  for (const auto& r : charge->reruns()) {
    EXPECT_EQ(r["rerun"].value("job", 0), id);
    EXPECT_TRUE(r["rerun"].value("resend", false));
    const std::string run = std::to_string(r.value("run_id", 0));
    EXPECT_EQ(scalar("SELECT (detail->>'reprocess_of') FROM run_history WHERE type = 'scheduled' "
                     "AND run_id = " +
                     run),
              std::to_string(r["rerun"].value("reprocess_of", 0)));
    EXPECT_EQ(scalar("SELECT status FROM workflow_run WHERE id = " + run), "succeeded");
    // The same event as the run it reprocesses.
    EXPECT_EQ(scalar("SELECT event_id FROM workflow_run WHERE id = " + run),
              scalar("SELECT event_id FROM workflow_run WHERE id = " +
                     std::to_string(r["rerun"].value("reprocess_of", 0))));
  }
  EXPECT_EQ(count("SELECT count(DISTINCT source_run_id) FROM reprocess_item WHERE new_run_id IS "
                  "NOT NULL"),
            3);
}

}  // namespace
}  // namespace chartflow
