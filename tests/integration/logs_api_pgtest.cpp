// GET /v1/logs filters (since, until, q, workflow, step, after) over real log records in the
// test's schema, through the server as `chartflow serve` wires it; and /metrics with and without
// --public-metrics.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

class LogsApiTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    app_ = std::make_unique<AppServer>(dsn());
    operator_ = create_token(dsn(), "operator");
    // Hours apart and years back, so the server's own records (written now) never fall between
    // them. Inserted in time order: ids grow with time, as the engine writes them.
    add("2020-01-01T10:00:00Z", "logs-a", "scan", "Disk 100% full on the scanner");
    add("2020-01-01T11:00:00Z", "logs-b", "billing", "disk 1000 entries billed");
    add("2020-01-01T12:00:00Z", "logs-a", "billing", "invoice issued");
  }
  void TearDown() override {
    app_.reset();
    PgTest::TearDown();
  }

  void add(const std::string& at, const std::string& workflow, const std::string& step,
           const std::string& message) {
    scalar("INSERT INTO log_record (at, level, workflow, step, attempt, message) VALUES ('" + at +
           "', 1, '" + workflow + "', '" + step + "', 1, '" + message + "')");
  }

  // The messages /v1/logs returns for `query` (newest first), of the records added above only.
  std::vector<std::string> messages(const std::string& query, Json* body = nullptr) {
    auto r = app_->call("GET", "/v1/logs?" + query, operator_);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    const Json page = r.json();
    if (body) *body = page;
    std::vector<std::string> out;
    for (const auto& l : page.value("logs", Json::array()))
      if (l.value("workflow", Json()).is_string() &&
          l.at("workflow").get<std::string>().rfind("logs-", 0) == 0)
        out.push_back(l.value("message", ""));
    return out;
  }

  std::unique_ptr<AppServer> app_;
  std::string operator_;
};

using Messages = std::vector<std::string>;

TEST_F(LogsApiTest, SinceAndUntilKeepOnlyRecordsInTheirWindow) {
  EXPECT_EQ(messages("since=2020-01-01T10:30:00Z"),
            (Messages{"invoice issued", "disk 1000 entries billed"}));
  EXPECT_EQ(messages("until=2020-01-01T11:30:00Z"),
            (Messages{"disk 1000 entries billed", "Disk 100% full on the scanner"}));
  EXPECT_EQ(messages("since=2020-01-01T10:30:00Z&until=2020-01-01T11:30:00Z"),
            (Messages{"disk 1000 entries billed"}));
  // since is inclusive, until exclusive.
  EXPECT_EQ(messages("since=2020-01-01T11:00:00Z&until=2020-01-01T12:00:00Z"),
            (Messages{"disk 1000 entries billed"}));
  EXPECT_EQ(app_->call("GET", "/v1/logs?since=yesterday", operator_).status, 400);
  EXPECT_EQ(app_->call("GET", "/v1/logs?until=2020-13-45", operator_).status, 400);
}

TEST_F(LogsApiTest, TextSearchIsCaseInsensitiveAndTakesWildcardsLiterally) {
  EXPECT_EQ(messages("q=DISK"),
            (Messages{"disk 1000 entries billed", "Disk 100% full on the scanner"}));
  // "%" is a character to find, not a LIKE wildcard: "100%" does not match "1000".
  EXPECT_EQ(messages("q=100%25"), (Messages{"Disk 100% full on the scanner"}));
  EXPECT_EQ(messages("q=invoice"), (Messages{"invoice issued"}));
}

TEST_F(LogsApiTest, WorkflowAndStepFiltersKeepOnlyTheirRecords) {
  EXPECT_EQ(messages("workflow=logs-a"),
            (Messages{"invoice issued", "Disk 100% full on the scanner"}));
  EXPECT_EQ(messages("step=billing"), (Messages{"invoice issued", "disk 1000 entries billed"}));
  EXPECT_EQ(messages("workflow=logs-a&step=billing"), (Messages{"invoice issued"}));
  EXPECT_TRUE(messages("workflow=logs-c").empty());
}

TEST_F(LogsApiTest, AfterPagesBackwardsFromTheCursor) {
  Json page;
  EXPECT_EQ(messages("workflow=logs-a&limit=1", &page), (Messages{"invoice issued"}));
  ASSERT_TRUE(page["next"].is_string()) << page.dump();
  const std::string next = page["next"];
  EXPECT_EQ(messages("workflow=logs-a&limit=1&after=" + next, &page),
            (Messages{"Disk 100% full on the scanner"}));
  // Without the workflow filter the cursor still excludes everything at or after it.
  EXPECT_EQ(messages("since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z&after=" + next),
            (Messages{"disk 1000 entries billed", "Disk 100% full on the scanner"}));
  EXPECT_EQ(app_->call("GET", "/v1/logs?after=abc", operator_).status, 400);
}

TEST_F(LogsApiTest, MetricsNeedAnOperatorUnlessPublic) {
  EXPECT_EQ(app_->call("GET", "/metrics", "").status, 401);
  auto with_token = app_->call("GET", "/metrics", operator_);
  EXPECT_EQ(with_token.status, 200);
  EXPECT_NE(with_token.body.find("chartflow_"), std::string::npos);
  const std::string uploader = create_token(dsn(), "uploader");
  EXPECT_EQ(app_->call("GET", "/metrics", uploader).status, 403);

  app_.reset();
  app::HttpRouteOptions routes;
  routes.public_metrics = true;
  app_ = std::make_unique<AppServer>(dsn(), test_server_settings(), nullptr, routes);
  auto open = app_->call("GET", "/metrics", "");
  EXPECT_EQ(open.status, 200) << open.body;
  EXPECT_NE(open.body.find("chartflow_"), std::string::npos);
  // Only /metrics opens: the API still wants a credential.
  EXPECT_EQ(app_->call("GET", "/v1/logs", "").status, 401);
  EXPECT_EQ(app_->call("GET", "/v1/runs", "").status, 401);
}

}  // namespace
}  // namespace chartflow::testing
