// Issue #17 item 3: reprocessing runs with a dry run. The dry run's answer, per side effect, is
// checked against what the reprocess then does, through the application as `chartflow serve`
// wires it (AppServer: the shipped chart-update workflow, its handlers, the HTTP API): ledger
// entries already present are skipped, insurer notifications already delivered go out again
// only with resend, and bills already sent only with force and a reason.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "handlers/testing/chart_test_data.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers {
namespace {

using chartflow::testing::AppServer;
using chartflow::testing::FakeHttpServer;
using chartflow::testing::HttpResponse;
using chartflow::testing::ReceivedRequest;
using chartflow::testing::TempDir;
using chartflow::testing::wait_until;
namespace data = chartflow::handlers::testing;

constexpr const char* kChart = "lemuel";  // released, one payor, two ledger entries
const char* const kChartFile =
    "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";
constexpr std::chrono::seconds kStepTimeout{60};

// What happened outside the engine, counted from the handlers' tables and the receivers.
struct World {
  std::int64_t ledger = 0, claims = 0, finals = 0, bill_attempts = 0;
  std::size_t insurer_calls = 0, webhook_calls = 0;
};

class ReprocessIssue17 : public chartflow::testing::PgTest {
 protected:
  void TearDown() override {
    app_.reset();
    ::unsetenv("CHARTFLOW_INSURER_URL");
    ::unsetenv("CHARTFLOW_BILL_DIR");
    ::unsetenv("CHARTFLOW_BILL_WEBHOOK_URL");
    PgTest::TearDown();
  }

  void start() {
    ::setenv("CHARTFLOW_INSURER_URL", insurer_.url("/claims").c_str(), 1);
    ::setenv("CHARTFLOW_BILL_DIR", (bill_root_.path() / "bills").c_str(), 1);
    ::setenv("CHARTFLOW_BILL_WEBHOOK_URL", webhook_.url("/bills").c_str(), 1);
    app_ = std::make_unique<AppServer>(dsn());
    admin_ = chartflow::testing::create_token(dsn(), "admin");
  }

  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return app_->call(method, target, admin_, body, {{"Content-Type", "application/json"}});
  }

  std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }

  std::string step_status(std::int64_t run_id, const std::string& step) {
    return scalar("SELECT status FROM step_run WHERE run_id = " + std::to_string(run_id) +
                  " AND step_key = '" + step + "'");
  }
  // The run's bill has gone out and its insurer notifications were delivered (the review, which
  // no side effect here needs, may still wait).
  bool wait_side_effects_done(std::int64_t run_id) {
    return wait_until(
        [&] {
          for (const char* step :
               {"billing", "insurance", "discharge", "final_notice", "send_bill"})
            if (step_status(run_id, step) != "succeeded") return false;
          return true;
        },
        kStepTimeout);
  }

  // An uploaded chart whose run has ended, its review approved.
  std::int64_t processed_chart() {
    auto r = app_->call("PUT", std::string("/v1/charts/") + kChart, admin_,
                        data::read_file(data::charts_dir() / kChartFile),
                        {{"Content-Type", "application/fhir+json"}});
    EXPECT_EQ(r.status, 202) << r.body;
    const std::int64_t run_id = r.json().at("runs")[0].get<std::int64_t>();
    EXPECT_TRUE(
        wait_until([&] { return step_status(run_id, "review") == "waiting"; }, kStepTimeout));
    const std::string review =
        scalar("SELECT id FROM review WHERE run_id = " + std::to_string(run_id));
    auto decided = app_->call("POST", "/v1/reviews/" + review + "/decision", admin_,
                              Json{{"decision", "approve"}, {"reason", "test"}}.dump(),
                              {{"Content-Type", "application/json"}});
    EXPECT_EQ(decided.status, 200) << decided.body;
    EXPECT_TRUE(wait_until(
        [&] {
          return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run_id)) ==
                 "succeeded";
        },
        kStepTimeout));
    return run_id;
  }

  World world() {
    World w;
    w.ledger = count("SELECT count(*) FROM ledger_entry");
    w.claims = count("SELECT count(*) FROM insurer_outbox WHERE kind = 'claim'");
    w.finals = count("SELECT count(*) FROM insurer_outbox WHERE kind = 'final'");
    w.bill_attempts = count("SELECT count(*) FROM bill_delivery_attempt");
    w.insurer_calls = insurer_.requests().size();
    w.webhook_calls = webhook_.requests().size();
    return w;
  }

  // Sum of the dry run's counts for (effect, action).
  static std::int64_t predicted(const Json& dry, const std::string& effect,
                                const std::string& action) {
    std::int64_t n = 0;
    for (const auto& e : dry.at("effects"))
      if (e.value("effect", "") == effect && e.value("action", "") == action)
        n += e.value("count", std::int64_t{0});
    return n;
  }

  // A dry run, then the reprocess itself with the same selection and flags; checks every
  // predicted effect against what the reprocess did, and returns the dry run.
  Json dry_run_then_reprocess(Json request) {
    request["dry_run"] = true;
    auto dry = call("POST", "/v1/reprocess", request.dump());
    EXPECT_EQ(dry.status, 200) << dry.body;
    Json predicted_effects = dry.json();
    const World before = world();

    request["dry_run"] = false;
    auto started = call("POST", "/v1/reprocess", request.dump());
    EXPECT_EQ(started.status, 202) << started.body;
    const std::string job = std::to_string(started.json().value("id", 0));
    EXPECT_TRUE(wait_until(
        [&] { return call("GET", "/v1/reprocess/" + job).json().value("status", "") == "done"; },
        kStepTimeout));
    const Json status = call("GET", "/v1/reprocess/" + job).json();
    EXPECT_EQ(status.value("total", -1), predicted_effects.value("runs", -2));
    EXPECT_EQ(status.value("started", -1), predicted_effects.value("runs", -2));
    for (const auto& row : query("SELECT new_run_id FROM reprocess_item WHERE job_id = " + job))
      EXPECT_TRUE(wait_side_effects_done(std::stoll(row)));
    const World after = world();

    EXPECT_EQ(after.ledger - before.ledger, predicted(predicted_effects, "ledger_entry", "add"));
    EXPECT_EQ(after.claims - before.claims,
              predicted(predicted_effects, "insurer_notification", "send"));
    EXPECT_EQ(after.finals - before.finals,
              predicted(predicted_effects, "insurer_final_notification", "send"));
    // The receivers answer 200 at once: one call per notification queued, one attempt per bill.
    EXPECT_EQ(static_cast<std::int64_t>(after.insurer_calls - before.insurer_calls),
              (after.claims - before.claims) + (after.finals - before.finals));
    EXPECT_EQ(after.bill_attempts - before.bill_attempts,
              predicted(predicted_effects, "bill", "send") +
                  predicted(predicted_effects, "bill", "resend"));
    return predicted_effects;
  }

  std::vector<std::string> query(const std::string& sql) {
    std::vector<std::string> out;
    const std::string list =
        scalar("SELECT coalesce(string_agg(x::text, ','), '') FROM (" + sql + ") q(x)");
    std::size_t start = 0;
    while (start < list.size()) {
      const auto end = list.find(',', start);
      out.push_back(list.substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return out;
  }

  FakeHttpServer insurer_{[](const ReceivedRequest&, int) { return 200; }};
  FakeHttpServer webhook_{[](const ReceivedRequest&, int) { return 200; }};
  TempDir bill_root_{"chartflow-reprocess"};
  std::unique_ptr<AppServer> app_;
  std::string admin_;
};

const Json kSelection = {
    {"workflow", "chart-update"}, {"chart_id", kChart}, {"status", Json::array({"succeeded"})}};

TEST_F(ReprocessIssue17, TheDryRunAnswersWhatTheReprocessThenDoes) {
  start();
  const auto original = processed_chart();
  const World first = world();
  ASSERT_EQ(first.ledger, 2);

  // Plain: nothing goes out again.
  const Json plain = dry_run_then_reprocess(kSelection);
  EXPECT_EQ(plain.value("runs", 0), 1);
  EXPECT_EQ(plain.value("charts", 0), 1);
  EXPECT_EQ(plain.at("chart_ids"), Json::array({kChart}));
  EXPECT_EQ(plain.at("run_ids"), Json::array({original}));
  EXPECT_EQ(predicted(plain, "ledger_entry", "skip"), 2);
  EXPECT_EQ(predicted(plain, "ledger_entry", "add"), 0);
  EXPECT_EQ(predicted(plain, "insurer_notification", "not_resent"), 1);
  EXPECT_EQ(predicted(plain, "insurer_notification", "send"), 0);
  EXPECT_EQ(predicted(plain, "insurer_final_notification", "not_resent"), 1);
  EXPECT_EQ(predicted(plain, "invoice", "reuse"), 1);
  EXPECT_EQ(predicted(plain, "bill", "not_resent"), 2) << plain.dump();
  EXPECT_EQ(world().insurer_calls, first.insurer_calls);

  // resend: the insurer hears of the charges and the closed bill again; the bill stays.
  Json resend = kSelection;
  resend["resend"] = true;
  const Json with_resend = dry_run_then_reprocess(resend);
  EXPECT_EQ(predicted(with_resend, "insurer_notification", "send"), 1);
  EXPECT_EQ(predicted(with_resend, "insurer_final_notification", "send"), 1);
  EXPECT_EQ(predicted(with_resend, "bill", "not_resent"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status <> 'delivered'"), 0);

  // force without a reason is refused; with one, the bill goes out again under a new key.
  Json force = kSelection;
  force["force"] = true;
  force["dry_run"] = false;
  EXPECT_EQ(call("POST", "/v1/reprocess", force.dump()).status, 400);
  force["reason"] = "the patient's bill was lost in the post";
  const std::size_t webhook_before = webhook_.requests().size();
  const Json forced = dry_run_then_reprocess(force);
  EXPECT_EQ(predicted(forced, "bill", "resend"), 2);
  EXPECT_EQ(predicted(forced, "insurer_notification", "send"), 0);
  const auto calls = webhook_.requests();
  ASSERT_EQ(calls.size(), webhook_before + 1);
  EXPECT_NE(calls.back().header("Idempotency-Key").find(":resend:"), std::string::npos);
  EXPECT_EQ(calls.back().body, calls.front().body) << "the resent bill differs from the first";
  // The ledger never changed.
  EXPECT_EQ(world().ledger, first.ledger);
  // Each start is on the audit record, the forced one with its reason.
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'reprocess.start' AND "
                  "outcome = 'success'"),
            3);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'reprocess.start' AND "
                  "detail->>'reason' = 'the patient''s bill was lost in the post'"),
            1);
  // The new runs know what they reprocess.
  EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE type = 'scheduled' AND "
                  "(detail->>'reprocess_of')::bigint = " +
                  std::to_string(original)),
            3);
}

}  // namespace
}  // namespace chartflow::handlers
