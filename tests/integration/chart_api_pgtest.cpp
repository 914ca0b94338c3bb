// The chart API end to end over HTTP with the shipped chart-update workflow: uploads become
// revisions and runs, duplicates start nothing, malformed uploads get their 4xx and store
// nothing, and a doctor's decision through the review API completes the run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

const std::string kSource = CHARTFLOW_SOURCE_DIR;
const std::string kChart =
    kSource +
    "/tests/data/charts/"
    "enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-8b7f6202.json";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The application as `chartflow serve` wires it; every request as an admin.
class ChartApiTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    app_ = std::make_unique<AppServer>(dsn());
    admin_ = create_token(dsn(), "admin");
  }

  void TearDown() override {
    app_.reset();
    PgTest::TearDown();
  }

  HttpResponse put_chart(const std::string& id, const std::string& body,
                         const std::string& type = "application/fhir+json") {
    return app_->call("PUT", "/v1/charts/" + id, admin_, body, {{"Content-Type", type}});
  }
  HttpResponse get(const std::string& target) { return app_->call("GET", target, admin_); }
  HttpResponse post(const std::string& target, const std::string& body) {
    return app_->call("POST", target, admin_, body);
  }

  std::unique_ptr<AppServer> app_;
  std::string admin_;
};

TEST_F(ChartApiTest, UploadReviewAndCompleteAChart) {
  const std::string body = read_file(kChart);
  ASSERT_FALSE(body.empty());
  auto first = put_chart("chart-1", body);
  ASSERT_EQ(first.status, 202) << first.body;
  const Json up = Json::parse(first.body);
  EXPECT_EQ(up.at("revision"), 1);
  ASSERT_EQ(up.at("runs").size(), 1u);
  const auto run_id = up.at("runs")[0].get<std::int64_t>();

  // The identical content again starts nothing.
  auto again = put_chart("chart-1", body, "application/json");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_TRUE(Json::parse(again.body).at("duplicate").get<bool>());
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run"), "1");

  // The review waits for the doctor; find it in the worklist.
  Json review;
  ASSERT_TRUE(wait_until([&] {
    auto r = get("/v1/reviews?status=pending");
    if (r.status != 200) return false;
    const Json list = Json::parse(r.body).at("reviews");
    if (list.empty()) return false;
    review = list[0];
    return true;
  }));
  EXPECT_EQ(review.at("chart_id"), "chart-1");
  EXPECT_EQ(review.at("run_id").get<std::int64_t>(), run_id);
  // The dashboard's "Escalated" filter asks for what the review table holds (was a 400).
  auto escalated = get("/v1/reviews?status=escalated");
  ASSERT_EQ(escalated.status, 200) << escalated.body;
  EXPECT_TRUE(Json::parse(escalated.body).at("reviews").empty());
  auto decide = post("/v1/reviews/" + review.at("id").dump() + "/decision",
                     R"({"decision": "approve", "comment": "looks right", "reason": "test"})");
  ASSERT_EQ(decide.status, 200) << decide.body;
  ASSERT_TRUE(wait_until([&] {
    return Json::parse(get("/v1/runs/" + std::to_string(run_id)).body).value("status", "") ==
           "succeeded";
  }));
  // Deciding twice is a conflict; a bad decision is a 400.
  EXPECT_EQ(post("/v1/reviews/" + review.at("id").dump() + "/decision",
                 R"({"decision": "approve", "reason": "test"})")
                .status,
            409);
  EXPECT_EQ(
      post("/v1/reviews/999999/decision", R"({"decision": "maybe", "reason": "test"})").status,
      404);

  auto chart = get("/v1/charts/chart-1");
  ASSERT_EQ(chart.status, 200);
  const Json c = Json::parse(chart.body);
  EXPECT_GE(c.at("revisions").size(), 1u);
  EXPECT_EQ(c.at("runs").size(), 1u);
  EXPECT_EQ(c.at("review").at("status"), "approved");
  EXPECT_GT(c.at("ledger_entries").get<int>(), 0);
  auto rev = get("/v1/charts/chart-1/revisions/1");
  ASSERT_EQ(rev.status, 200);
  // The Bundle as uploaded: byte for byte, so its sha256 is the revision's content hash.
  EXPECT_EQ(rev.body, body);
  EXPECT_EQ(get("/v1/charts/chart-1/revisions/99").status, 404);
  EXPECT_EQ(get("/v1/charts/nobody").status, 404);
}

// A tablet that retries an upload whose answer it lost sends the same chart again, perhaps while
// the first is still being stored: identical PUTs at the same moment are one revision, one event
// and one run, and every one of them is answered as accepted (202) or as the duplicate (200).
TEST_F(ChartApiTest, ConcurrentIdenticalUploadsOfOneChartStoreOneRevision) {
  const std::string body = read_file(kChart);
  constexpr int kClients = 8;
  std::vector<int> status(kClients, 0);
  std::vector<std::string> answers(kClients);
  std::vector<std::thread> clients;
  std::promise<void> go;
  const std::shared_future<void> start = go.get_future().share();
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      start.wait();
      const auto r = put_chart("same-chart", body);
      status[i] = r.status;
      answers[i] = r.body;
    });
  go.set_value();
  for (auto& c : clients) c.join();
  int accepted = 0;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(status[i] == 202 || status[i] == 200) << i << ": " << status[i] << answers[i];
    if (status[i] == 202)
      ++accepted;
    else
      EXPECT_TRUE(Json::parse(answers[i]).at("duplicate").get<bool>()) << answers[i];
  }
  EXPECT_EQ(accepted, 1) << "exactly one upload stored the chart";
  // (The run may already have written questions back as a revision of its own.)
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision WHERE chart_id = 'same-chart' AND source "
                   "= 'upload'"),
            "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'chart.uploaded'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run"), "1");
}

TEST_F(ChartApiTest, MalformedUploadsGetA4xxAndStoreNothing) {
  struct Case {
    std::string id, body, type;
    int status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"c1", "{not json", "application/fhir+json", 400, "not valid JSON"},
      {"c1", R"({"resourceType": "Bundle", "n": 1e999})", "application/json", 400, "out of range"},
      {"c1", R"({"resourceType": "Patient"})", "application/fhir+json", 422, "Bundle"},
      {"c1", R"({"resourceType": "Bundle", "entry": []})", "application/json", 422, "entr"},
      {"c1",
       R"({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Encounter"}}]})",
       "application/json", 422, "Patient"},
      {"c1", read_file(kChart), "text/plain", 415, "content type"},
      {"a..b", read_file(kChart), "application/json", 400, "chart id"},
      {"c1", "", "application/json", 400, "empty"},
  };
  for (const auto& c : cases) {
    auto r = put_chart(c.id, c.body, c.type);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 60) << " -> " << r.body;
    EXPECT_THAT(r.body, HasSubstr(c.says));
  }
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), "0");
}

}  // namespace
}  // namespace chartflow::testing
