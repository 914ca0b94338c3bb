// Chart revision retention (issue #17 item 5): with settings/chart-retention.yaml's `revisions`
// set, the chart-retention workflow deletes the revisions older than that, except each chart's
// newest and every revision of a held chart, each chart's deletion audited; with the default
// (forever) it deletes nothing; a bad setting is refused at start naming the file and the key.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "handlers/chart_retention/revision_retention.hpp"
#include "store/store.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/pg_fixture.hpp"

namespace {

using chartflow::Json;
using chartflow::handlers::chart_retention::RevisionRetention;
using chartflow::testing::AppServer;
using chartflow::testing::wait_until;

class ChartRetentionIssue17 : public chartflow::testing::PgTest {
 protected:
  void TearDown() override {
    app_.reset();
    PgTest::TearDown();
  }
  void start(std::optional<Json> retention) {
    chartflow::handlers::ChartHandlerOptions chart;
    chart.chart_retention = std::move(retention);
    app_ = std::make_unique<AppServer>(dsn(), chartflow::testing::test_server_settings(), nullptr,
                                       chartflow::app::HttpRouteOptions{}, chart);
    admin_ = chartflow::testing::create_token(dsn(), "admin");
  }
  // A chart with revisions made `ages` days ago, oldest first.
  void chart(const std::string& id, const std::vector<int>& ages) {
    scalar("INSERT INTO chart (chart_id, latest_revision) VALUES ('" + id + "', " +
           std::to_string(ages.size()) + ") RETURNING 1");
    for (std::size_t i = 0; i < ages.size(); ++i)
      scalar(fmt::format(
          "INSERT INTO chart_revision (chart_id, revision, content_hash, body, source, "
          "created_at) VALUES ('{0}', {1}, encode(sha256('{0}{1}'), 'hex'), '{{}}', 'upload', "
          "now() - interval '{2} days') RETURNING 1",
          id, i + 1, ages[i]));
  }
  std::string revisions(const std::string& id) {
    return scalar(
        "SELECT coalesce(string_agg(revision::text, ',' ORDER BY revision), '') FROM "
        "chart_revision WHERE chart_id = '" +
        id + "'");
  }
  // Starts the daily workflow now, as its schedule would, and waits for its run to end.
  Json run_retention() {
    chartflow::EventInput tick;
    tick.type = "schedule.tick";
    tick.body = {{"workflow", "chart-retention"}};
    const auto run = app_->engine().ingest(std::move(tick)).run_ids.at(0);
    EXPECT_TRUE(wait_until(
        [&] {
          return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run)) ==
                 "succeeded";
        },
        std::chrono::seconds(60)));
    return Json::parse(scalar("SELECT output::text FROM step_run WHERE run_id = " +
                              std::to_string(run) + " AND step_key = 'expire'"));
  }

  std::unique_ptr<AppServer> app_;
  std::string admin_;
};

TEST_F(ChartRetentionIssue17, RevisionsPastTheRetentionGoButTheNewestAndHeldChartsStay) {
  start(Json{{"revisions", "400d"}});
  chart("c-old", {900, 800, 700});  // all old: the newest stays
  chart("c-mixed", {500, 10});      // one old, one recent
  chart("c-held", {900, 800});      // old, but held
  auto held = app_->call("POST", "/v1/holds", admin_,
                         Json{{"subject", "c-held"}, {"reason", "litigation"}}.dump(),
                         {{"Content-Type", "application/json"}});
  ASSERT_EQ(held.status, 201) << held.body;

  const Json out = run_retention();
  EXPECT_EQ(out["expired"], 3) << out.dump();
  EXPECT_EQ(out["charts"], 2) << out.dump();
  EXPECT_EQ(revisions("c-old"), "3");
  EXPECT_EQ(revisions("c-mixed"), "2");
  EXPECT_EQ(revisions("c-held"), "1,2");
  EXPECT_EQ(scalar("SELECT string_agg(resource_id || ':' || (detail->>'revisions'), ',' ORDER BY "
                   "resource_id) FROM audit_event WHERE action = 'chart.revisions_expired'"),
            "c-mixed:1,c-old:2");

  // Released, the held chart's old revision goes on the next run; its newest stays.
  auto released =
      app_->call("DELETE", "/v1/holds/c-held", admin_, Json{{"reason", "case closed"}}.dump(),
                 {{"Content-Type", "application/json"}});
  ASSERT_EQ(released.status, 200) << released.body;
  EXPECT_EQ(run_retention()["expired"], 1);
  EXPECT_EQ(revisions("c-held"), "2");
}

TEST_F(ChartRetentionIssue17, ByDefaultRevisionsAreKeptForever) {
  start(std::nullopt);  // the shipped settings/chart-retention.yaml: revisions: forever
  chart("c-old", {9000, 8000});
  const Json out = run_retention();
  EXPECT_EQ(out["revisions"], "forever");
  EXPECT_EQ(out["expired"], 0);
  EXPECT_EQ(revisions("c-old"), "1,2");
}

TEST(RevisionRetentionSettings, ABadValueIsRefusedNamingIt) {
  EXPECT_FALSE(RevisionRetention::from_json(nullptr).keep);
  EXPECT_FALSE(RevisionRetention::from_json(Json{{"revisions", "forever"}}).keep);
  EXPECT_EQ(RevisionRetention::from_json(Json{{"revisions", "3650d"}}).keep,
            std::chrono::hours(24 * 3650));
  for (const Json& bad : {Json{{"revisions", "30d"}}, Json{{"revisions", "ten years"}},
                          Json{{"revisions", 3650}}, Json{{"revision", "3650d"}}}) {
    try {
      RevisionRetention::from_json(bad);
      ADD_FAILURE() << bad.dump() << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("revision"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
