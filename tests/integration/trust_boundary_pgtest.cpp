// Issue #14, the trust boundary: what a credential may do is decided by its role wherever the
// request enters. Each test is named after the finding it pins down: an operator deciding a
// doctor's review through a generic run signal, a forged chart.uploaded event, a handler trusting
// an event body over the stored chart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

const std::string kCharts = std::string(CHARTFLOW_SOURCE_DIR) + "/tests/data/charts/";
// Not released (no finished encounter with a discharge disposition).
const std::string kNotReleased =
    kCharts + "enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-8b7f6202.json";
const std::string kOtherChart =
    kCharts + "enc-abdul-koepp-20170328-imp-non-urgent-orthopedic-admission-00f7b7ce.json";

class TrustBoundaryTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    app_ = std::make_unique<AppServer>(dsn());
    admin_ = create_token(dsn(), "admin");
    operator_ = create_token(dsn(), "operator");
  }
  void TearDown() override {
    app_.reset();
    PgTest::TearDown();
  }
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }

  // Uploads `file` as chart `id`; returns its run id.
  std::int64_t upload(const std::string& id, const std::string& file) {
    auto r = app_->call("PUT", "/v1/charts/" + id, admin_, read_file(file),
                        {{"Content-Type", "application/fhir+json"}});
    EXPECT_EQ(r.status, 202) << r.body;
    return r.status == 202 ? r.json().at("runs")[0].get<std::int64_t>() : 0;
  }
  // The pending review of chart `id`, once the run has made it.
  Json pending_review(const std::string& chart_id) {
    Json review;
    EXPECT_TRUE(wait_until([&] {
      auto r = app_->call("GET", "/v1/reviews?status=pending", admin_);
      if (r.status != 200) return false;
      const Json list = r.json();  // kept alive for the loop
      for (const auto& rv : list.at("reviews"))
        if (rv.at("chart_id") == chart_id) review = rv;
      return !review.is_null();
    }));
    return review;
  }
  Json run(std::int64_t id) {
    return app_->call("GET", "/v1/runs/" + std::to_string(id), admin_).json();
  }

  std::unique_ptr<AppServer> app_;
  std::string admin_, operator_;
};

TEST_F(TrustBoundaryTest, OperatorCannotDecideAReviewThroughARunSignal) {
  const auto run_id = upload("chart-a", kNotReleased);
  const Json review = pending_review("chart-a");
  ASSERT_FALSE(review.is_null());
  const std::string assignee = review.at("assignee").get<std::string>();

  auto forged =
      app_->call("POST", "/v1/runs/" + std::to_string(run_id) + "/signal/review", operator_,
                 R"({"decision": "approve", "decided_by": ")" + assignee + R"("})");
  EXPECT_EQ(forged.status, 403) << forged.body;
  EXPECT_THAT(forged.body, HasSubstr("/v1/reviews/{id}/decision"));
  // Refused before anything was written: no kept signal, the review still pending.
  EXPECT_EQ(count("SELECT count(*) FROM run_signal"), 0);
  EXPECT_EQ(scalar("SELECT status FROM review WHERE chart_id = 'chart-a'"), "pending");
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'run.signal' AND outcome = "
                  "'denied'"),
            1);
  // Not even an admin delivers a handler's own signal through the generic route.
  EXPECT_EQ(app_->call("POST", "/v1/runs/" + std::to_string(run_id) + "/signal/review", admin_,
                       R"({"decision": "approve"})")
                .status,
            403);
  // A signal no handler owns still reaches the run (stored for a step that may wait for it).
  EXPECT_EQ(
      app_->call("POST", "/v1/runs/" + std::to_string(run_id) + "/signal/nudge", operator_, R"({})")
          .status,
      202);
}

TEST_F(TrustBoundaryTest, ReviewDeciderComesFromTheCredentialAndAnAdminMustGiveAReason) {
  upload("chart-a", kNotReleased);
  upload("chart-b", kOtherChart);
  const Json a = pending_review("chart-a");
  const Json b = pending_review("chart-b");
  ASSERT_FALSE(a.is_null());
  ASSERT_FALSE(b.is_null());
  const std::string doctor = create_token(dsn(), "reviewer", a.at("assignee").get<std::string>());

  // decided_by is never taken from a body.
  auto forged = app_->call("POST", "/v1/reviews/" + a.at("id").dump() + "/decision", doctor,
                           R"({"decision": "approve", "decided_by": "Practitioner/forged"})");
  EXPECT_EQ(forged.status, 400) << forged.body;
  EXPECT_THAT(forged.body, HasSubstr("decided_by"));
  auto ok = app_->call("POST", "/v1/reviews/" + a.at("id").dump() + "/decision", doctor,
                       R"({"decision": "approve"})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(scalar("SELECT decided_by FROM review WHERE chart_id = 'chart-a'"),
            scalar("SELECT 'token:' || id FROM api_token WHERE role = 'reviewer'"));

  // An admin decides another's review only with a reason, and the audit trail says so.
  auto no_reason = app_->call("POST", "/v1/reviews/" + b.at("id").dump() + "/decision", admin_,
                              R"({"decision": "reject"})");
  EXPECT_EQ(no_reason.status, 400) << no_reason.body;
  EXPECT_THAT(no_reason.body, HasSubstr("reason"));
  EXPECT_EQ(scalar("SELECT status FROM review WHERE chart_id = 'chart-b'"), "pending");
  auto with_reason =
      app_->call("POST", "/v1/reviews/" + b.at("id").dump() + "/decision", admin_,
                 R"({"decision": "reject", "reason": "assignee on leave, covering"})");
  ASSERT_EQ(with_reason.status, 200) << with_reason.body;
  EXPECT_EQ(scalar("SELECT decided_by FROM review WHERE chart_id = 'chart-b'"),
            scalar("SELECT 'token:' || id FROM api_token WHERE role = 'admin'"));
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'review.decide' AND outcome = "
                  "'success' AND detail->>'reason' = 'assignee on leave, covering' AND "
                  "(detail->>'on_behalf_of_assignee')::boolean"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'review.decide' AND outcome = "
                  "'success'"),
            2);
}

TEST_F(TrustBoundaryTest, EventTypesChartflowEmitsCannotBeCreatedThroughTheApi) {
  for (const char* type : {"chart.uploaded", "schedule.tick", "workflow.succeeded",
                           "workflow.failed", "alert.firing", "object.created"}) {
    auto r = app_->call("POST", std::string("/v1/events/") + type, operator_,
                        R"({"chart_id": "chart-x", "revision": 1, "released": true})");
    EXPECT_EQ(r.status, 400) << type << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr(std::string("'") + type + "' is reserved"));
  }
  auto batch = app_->call("POST", "/v1/events", operator_,
                          R"({"events": [{"type": "lab.result", "body": {}},
                                         {"type": "chart.uploaded", "body": {"chart_id": "x"}}]})");
  EXPECT_EQ(batch.status, 400) << batch.body;
  EXPECT_THAT(batch.body, HasSubstr("events[1]"));
  EXPECT_EQ(count("SELECT count(*) FROM event"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM workflow_run"), 0);
  // An ordinary type still enters.
  EXPECT_EQ(app_->call("POST", "/v1/events/lab.result", operator_, R"({"x": 1})").status, 202);
}

TEST_F(TrustBoundaryTest, DischargeReadsTheReleaseFromTheStoredChartNotTheEventBody) {
  upload("chart-a", kNotReleased);
  ASSERT_EQ(scalar("SELECT count(*) FROM chart_revision WHERE chart_id = 'chart-a'"), "1");
  // An event body that lies about the chart (as a forged event would): released, billable.
  store::EventInput ev;
  ev.type = "chart.uploaded";
  ev.source = "test";
  ev.dedup_key = "forged-body";
  ev.body = {{"chart_id", "chart-a"}, {"revision", 1}, {"released", true}, {"has_billable", true}};
  const auto forged = app_->engine().ingest(ev);
  ASSERT_EQ(forged.run_ids.size(), 1u);
  Json discharge;
  ASSERT_TRUE(wait_until(
      [&] {
        const Json r = run(forged.run_ids[0]);  // kept alive for the loop
        for (const auto& s : r.at("steps"))
          if (s.at("name") == "discharge" && s.at("status") == "succeeded") discharge = s;
        return !discharge.is_null();
      },
      std::chrono::seconds(90)))
      << run(forged.run_ids[0]).dump();
  EXPECT_EQ(discharge.at("output").value("released", true), false) << discharge.dump();
  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery"), 0);
}

// Item 22: the billing role saw the patient's name in review.summary.
TEST_F(TrustBoundaryTest, BillingSeesNoPatientNameOrClinicalSummary) {
  upload("chart-a", kNotReleased);
  ASSERT_FALSE(pending_review("chart-a").is_null());
  const std::string billing = create_token(dsn(), "billing");
  auto r = app_->call("GET", "/v1/charts/chart-a", billing);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("Koepp")));
  const Json review = r.json().at("review");
  EXPECT_FALSE(review.contains("summary")) << review.dump();
  EXPECT_EQ(review.at("status"), "pending");
  // The doctor's view keeps it.
  auto admin_view = app_->call("GET", "/v1/charts/chart-a", admin_);
  EXPECT_THAT(admin_view.body, HasSubstr("Koepp"));
}

// Item 13 (in part): operators saw chart runs' step errors, which may quote chart content.
TEST_F(TrustBoundaryTest, OperatorsSeeChartRunsStepErrorsRedacted) {
  store::EventInput ev;
  ev.type = "chart.uploaded";
  ev.source = "test";
  ev.dedup_key = "missing-chart";
  ev.body = {{"chart_id", "no-such-chart"}, {"revision", 1}};
  const auto run_id = app_->engine().ingest(ev).run_ids.at(0);
  ASSERT_TRUE(wait_until([&] {
    const Json r = run(run_id);
    for (const auto& s : r.at("steps"))
      if (!s.value("error", Json()).is_null()) return true;
    return false;
  })) << run(run_id).dump();
  const std::string admin_view = run(run_id).dump();
  EXPECT_THAT(admin_view, HasSubstr("no-such-chart revision 1 not found"));
  auto op = app_->call("GET", "/v1/runs/" + std::to_string(run_id), operator_);
  ASSERT_EQ(op.status, 200);
  EXPECT_THAT(op.body, ::testing::Not(HasSubstr("not found"))) << op.body;
  EXPECT_THAT(op.body, HasSubstr("redacted"));
}

// Item 13: an external handler's stderr (whatever it printed about the chart) reached operators
// through /v1/logs. The line below is what the handler process logger stores for a stderr line
// (external handler tests check that marking); operators see that it printed, not what.
TEST_F(TrustBoundaryTest, OperatorsSeeHandlerStderrOfChartRunsRedacted) {
  const auto run_id = upload("chart-a", kNotReleased);
  ASSERT_GT(run_id, 0);
  const std::string run = std::to_string(run_id);
  scalar(
      "INSERT INTO log_record (level, workflow, run_id, step, message, fields) VALUES (1, "
      "'chart-update', " +
      run +
      ", 'scan', 'patient Abdul Koepp looks fine', "
      "'{\"stream\": \"stderr\"}') RETURNING id");
  // The handlers' own step logs (ids only) stay visible to operators: wait for one.
  ASSERT_TRUE(wait_until([&] {
    return app_->call("GET", "/v1/logs?run=" + run, operator_).body.find("chart_id") !=
           std::string::npos;
  }));
  auto op = app_->call("GET", "/v1/logs?run=" + run, operator_);
  ASSERT_EQ(op.status, 200) << op.body;
  EXPECT_THAT(op.body, ::testing::Not(HasSubstr("Koepp")));
  EXPECT_THAT(op.body, HasSubstr("redacted"));
  auto admin = app_->call("GET", "/v1/logs?run=" + run, admin_);
  EXPECT_THAT(admin.body, HasSubstr("patient Abdul Koepp looks fine"));
}

}  // namespace
}  // namespace chartflow::testing
