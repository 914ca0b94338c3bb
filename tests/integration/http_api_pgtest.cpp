// The JSON API end to end: a real Beast server (port 0) over the engine routes and an engine on
// the test's own schema, driven through HTTP only, as a client of `chartflow serve` would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "http/api_routes.hpp"
#include "http/auth_routes.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

constexpr std::size_t kBodyLimit = 1024;

// RFC 3339 UTC with milliseconds, as every time in the API is written.
const std::regex kApiTime(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const char* kFailingYaml = R"(name: failing
on:
  - event: demo.fail
steps:
  prepare: { handler: noop }
  boom:
    handler: fail
    needs: [prepare]
    input: { message: boom by design }
    retry: { max_attempts: 1 }
)";

const char* kWaitingYaml = R"(name: waiting
on:
  - event: demo.wait
steps:
  hold: { handler: wait_signal, input: { signal: go } }
  after: { handler: noop, needs: [hold] }
)";

bool is_api_time(const Json& v) {
  return v.is_string() && std::regex_match(v.get<std::string>(), kApiTime);
}

// The server and its engine as `chartflow serve` wires them (metrics hooks included), with the
// workflows published by an EngineHarness. The harness's own engine never starts.
class HttpApiTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    const std::string diamond =
        read_file(std::string(CHARTFLOW_SOURCE_DIR) + "/workflows/diamond.yaml");
    ASSERT_FALSE(diamond.empty()) << "workflows/diamond.yaml not found";
    runtime::EngineSettings harness_settings;
    harness_settings.workers = 0;
    harness_ = std::make_unique<EngineHarness>(
        dsn(), std::vector<std::string>{diamond, kFailingYaml, kWaitingYaml}, nullptr,
        harness_settings);

    auto registry = std::make_shared<runtime::WorkflowRegistry>();
    registry->load_latest(harness_->store());
    runtime::EngineSettings settings;
    settings.dsn = dsn();
    settings.workers = 2;
    settings.poll_interval = std::chrono::milliseconds(200);
    runtime::EngineHooks hooks;
    hooks.run_started = [this](const std::string& wf) { metrics_.run_started(wf); };
    hooks.run_finished = [this](const std::string& wf, const std::string& status) {
      metrics_.run_finished(wf, status);
    };
    engine_ = std::make_unique<runtime::Engine>(settings, harness_->handlers(), registry, hooks);
    engine_->start();

    router_.on_response = [this](const std::string& route, const std::string& method, int status,
                                 double secs) {
      metrics_.http_request(route, method, status, secs);
    };
    http::add_auth(router_, *engine_);
    http::add_engine_routes(router_, *engine_, metrics_);
    admin_token_ = create_token(dsn(), "admin");
    http::ServerSettings ss;
    ss.host = "127.0.0.1";
    ss.port = 0;
    ss.limits.body_bytes = kBodyLimit;
    ss.threads = 2;
    server_ = std::make_unique<http::Server>(ss, router_);
    server_->start();
    port_ = server_->port();
  }

  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    if (engine_) engine_->drain();
    engine_.reset();
    harness_.reset();
    PgTest::TearDown();
  }

  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "",
                    const std::map<std::string, std::string>& headers = {}) {
    return request(method, "127.0.0.1", port_, target, body, with_bearer(admin_token_, headers));
  }

  // Posts an event and returns the one run it started.
  std::int64_t start_run(const std::string& type, const Json& body = Json::object()) {
    auto r = call("POST", "/v1/events/" + type, body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    const Json j = r.json();
    if (!j.is_object() || !j.contains("runs") || j["runs"].size() != 1) {
      ADD_FAILURE() << "event " << type << " should start one run: " << r.body;
      return 0;
    }
    return j["runs"][0].get<std::int64_t>();
  }

  Json get_run(std::int64_t id) {
    auto r = call("GET", "/v1/runs/" + std::to_string(id));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }

  std::string run_status(std::int64_t id) {
    const Json j = get_run(id);
    return j.is_object() ? j.value("status", "") : "";
  }

  bool wait_status(std::int64_t id, const std::string& status,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return wait_until([&] { return run_status(id) == status; }, timeout);
  }

  static Json step_of(const Json& run, const std::string& name) {
    for (const auto& s : run.at("steps"))
      if (s.value("name", "") == name) return s;
    return Json();
  }

  static int history_count(const Json& run, const std::string& type, const std::string& step) {
    int n = 0;
    for (const auto& h : run.at("history"))
      if (h.value("type", "") == type && h["step"].is_string() && h["step"] == step) ++n;
    return n;
  }

  std::unique_ptr<EngineHarness> harness_;
  metrics::Metrics metrics_;
  std::unique_ptr<runtime::Engine> engine_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  std::string admin_token_;
  unsigned short port_ = 0;
};

TEST_F(HttpApiTest, EventsAreAcceptedDeduplicatedAndValidated) {
  const std::map<std::string, std::string> key = {{"Idempotency-Key", "order-17"}};
  auto first = call("POST", "/v1/events/demo.diamond", R"({"skip_e": true})", key);
  ASSERT_EQ(first.status, 202) << first.body;
  EXPECT_THAT(first.header("content-type"), HasSubstr("application/json"));
  const Json a = first.json();
  ASSERT_TRUE(a.is_object()) << first.body;
  ASSERT_TRUE(a["event_id"].is_number_integer()) << first.body;
  ASSERT_TRUE(a["runs"].is_array()) << first.body;
  ASSERT_EQ(a["runs"].size(), 1u) << first.body;
  EXPECT_TRUE(a["runs"][0].is_number_integer());
  EXPECT_EQ(a["duplicate"], false);

  auto again = call("POST", "/v1/events/demo.diamond", R"({"skip_e": true})", key);
  ASSERT_EQ(again.status, 200) << again.body;
  const Json b = again.json();
  EXPECT_EQ(b["duplicate"], true);
  EXPECT_EQ(b["event_id"], a["event_id"]);
  EXPECT_EQ(b["runs"], a["runs"]);
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run"), "1");

  auto malformed = call("POST", "/v1/events/demo.diamond", R"({"skip_e": tru)");
  EXPECT_EQ(malformed.status, 400) << malformed.body;
  ASSERT_TRUE(malformed.json().contains("error")) << malformed.body;
  EXPECT_THAT(malformed.json()["error"].get<std::string>(), HasSubstr("JSON"));

  auto wrong_type =
      call("POST", "/v1/events/demo.diamond", "skip_e=1", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(wrong_type.status, 415) << wrong_type.body;
  EXPECT_TRUE(wrong_type.json().contains("error")) << wrong_type.body;

  auto bad_type = call("POST", "/v1/events/demo$diamond", "{}");
  EXPECT_EQ(bad_type.status, 400) << bad_type.body;
  EXPECT_TRUE(bad_type.json().contains("error")) << bad_type.body;
  auto spaced_type = call("POST", "/v1/events/demo%20diamond", "{}");
  EXPECT_EQ(spaced_type.status, 400) << spaced_type.body;

  const std::string big = Json{{"pad", std::string(kBodyLimit * 2, 'x')}}.dump();
  auto too_big = call("POST", "/v1/events/demo.diamond", big);
  EXPECT_EQ(too_big.status, 413) << too_big.body;
  EXPECT_TRUE(too_big.json().contains("error")) << too_big.body;
  // The server survives it and answers the next request.
  EXPECT_EQ(call("GET", "/healthz").status, 200);
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run"), "1");
}

TEST_F(HttpApiTest, RunDetailHasTheDocumentedShape) {
  const auto id = start_run("demo.diamond", Json{{"skip_e", false}});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(wait_status(id, "succeeded")) << get_run(id).dump(2);
  const Json run = get_run(id);

  EXPECT_EQ(run["id"], id);
  EXPECT_EQ(run["workflow"], "diamond");
  EXPECT_TRUE(run["version"].is_number_integer());
  EXPECT_EQ(run["status"], "succeeded");
  EXPECT_TRUE(is_api_time(run["created_at"])) << run["created_at"];
  EXPECT_TRUE(is_api_time(run["finished_at"])) << run["finished_at"];

  ASSERT_TRUE(run["steps"].is_array());
  ASSERT_EQ(run["steps"].size(), 5u);
  std::set<std::string> names;
  for (const auto& s : run["steps"]) {
    for (const char* field : {"name", "handler", "status", "attempts", "needs", "started_at",
                              "finished_at", "output", "error"})
      EXPECT_TRUE(s.contains(field)) << "step lacks " << field << ": " << s.dump();
    names.insert(s.value("name", ""));
    EXPECT_EQ(s["status"], "succeeded") << s.dump();
    EXPECT_EQ(s["attempts"], 1) << s.dump();
    EXPECT_TRUE(s["needs"].is_array()) << s.dump();
    EXPECT_TRUE(is_api_time(s["started_at"])) << s.dump();
    EXPECT_TRUE(is_api_time(s["finished_at"])) << s.dump();
    EXPECT_TRUE(s["error"].is_null()) << s.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(step_of(run, "b")["handler"], "sleep");
  EXPECT_EQ(step_of(run, "b")["output"], (Json{{"ms", 300}}));
  EXPECT_EQ(step_of(run, "d")["needs"], (Json{"b", "c"}));

  ASSERT_TRUE(run["history"].is_array());
  ASSERT_FALSE(run["history"].empty());
  std::set<std::string> types;
  for (const auto& h : run["history"]) {
    for (const char* field : {"at", "type", "step", "attempt", "worker", "detail"})
      EXPECT_TRUE(h.contains(field)) << "history entry lacks " << field << ": " << h.dump();
    EXPECT_TRUE(is_api_time(h["at"])) << h.dump();
    types.insert(h.value("type", ""));
  }
  EXPECT_EQ(run["history"].front()["type"], "scheduled");
  EXPECT_TRUE(types.count("started"));
  EXPECT_TRUE(types.count("waiting"));  // b sleeps on a durable timer
  EXPECT_TRUE(types.count("succeeded"));
  for (const std::string step : {"a", "c", "d", "e"}) {
    EXPECT_EQ(history_count(run, "started", step), 1) << step;
    EXPECT_EQ(history_count(run, "succeeded", step), 1) << step;
  }

  auto missing = call("GET", "/v1/runs/987654321");
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_TRUE(missing.json().contains("error"));
  auto not_numeric = call("GET", "/v1/runs/abc");
  EXPECT_EQ(not_numeric.status, 400) << not_numeric.body;
  EXPECT_TRUE(not_numeric.json().contains("error"));
  EXPECT_EQ(call("GET", "/v1/runs/-3").status, 400);
}

TEST_F(HttpApiTest, RunListFiltersAndPages) {
  std::vector<std::int64_t> diamonds;
  for (int i = 0; i < 5; ++i) diamonds.push_back(start_run("demo.diamond", Json{{"skip_e", true}}));
  const auto failing = start_run("demo.fail");
  const auto waiting = start_run("demo.wait");
  for (auto id : diamonds) ASSERT_TRUE(wait_status(id, "succeeded")) << id;
  ASSERT_TRUE(wait_status(failing, "failed"));
  ASSERT_TRUE(wait_status(waiting, "waiting"));

  auto ids_of = [](const Json& page) {
    std::vector<std::int64_t> ids;
    for (const auto& r : page.at("runs")) ids.push_back(r.at("id").get<std::int64_t>());
    return ids;
  };

  auto by_workflow = call("GET", "/v1/runs?workflow=diamond");
  ASSERT_EQ(by_workflow.status, 200) << by_workflow.body;
  const Json wf = by_workflow.json();
  EXPECT_EQ(wf["runs"].size(), 5u) << by_workflow.body;
  for (const auto& r : wf["runs"]) {
    EXPECT_EQ(r["workflow"], "diamond");
    EXPECT_TRUE(is_api_time(r["created_at"])) << r.dump();
  }
  EXPECT_TRUE(wf["next"].is_null()) << by_workflow.body;

  auto by_status = call("GET", "/v1/runs?status=failed");
  ASSERT_EQ(by_status.status, 200) << by_status.body;
  EXPECT_EQ(ids_of(by_status.json()), std::vector<std::int64_t>{failing});
  auto combined = call("GET", "/v1/runs?workflow=diamond&status=waiting");
  ASSERT_EQ(combined.status, 200);
  EXPECT_TRUE(combined.json()["runs"].empty()) << combined.body;

  // Paging: newest first, the pages disjoint and together complete.
  std::vector<std::int64_t> all = diamonds;
  all.push_back(failing);
  all.push_back(waiting);
  std::sort(all.rbegin(), all.rend());
  auto page1 = call("GET", "/v1/runs?limit=4");
  ASSERT_EQ(page1.status, 200) << page1.body;
  const Json p1 = page1.json();
  ASSERT_EQ(p1["runs"].size(), 4u);
  ASSERT_TRUE(p1["next"].is_string() || p1["next"].is_number()) << page1.body;
  const std::string next =
      p1["next"].is_string() ? p1["next"].get<std::string>() : p1["next"].dump();
  auto page2 = call("GET", "/v1/runs?limit=4&after=" + next);
  ASSERT_EQ(page2.status, 200) << page2.body;
  const Json p2 = page2.json();
  EXPECT_EQ(p2["runs"].size(), 3u) << page2.body;
  EXPECT_TRUE(p2["next"].is_null()) << page2.body;
  std::vector<std::int64_t> seen = ids_of(p1);
  for (auto id : ids_of(p2)) seen.push_back(id);
  EXPECT_EQ(seen, all) << "pages must be disjoint, complete and newest first";

  // Time windows: RFC 3339 and HH:MM.
  auto since_old = call("GET", "/v1/runs?since=2000-01-01T00:00:00Z");
  ASSERT_EQ(since_old.status, 200) << since_old.body;
  EXPECT_EQ(since_old.json()["runs"].size(), all.size());
  auto until_old = call("GET", "/v1/runs?until=2000-01-01T00:00:00.000%2B02:00");
  ASSERT_EQ(until_old.status, 200) << until_old.body;
  EXPECT_TRUE(until_old.json()["runs"].empty()) << until_old.body;
  auto since_future = call("GET", "/v1/runs?since=2999-12-31T23:59:59Z");
  ASSERT_EQ(since_future.status, 200) << since_future.body;
  EXPECT_TRUE(since_future.json()["runs"].empty());
  auto since_hhmm = call("GET", "/v1/runs?since=00:00");
  EXPECT_EQ(since_hhmm.status, 200) << since_hhmm.body;
  EXPECT_TRUE(since_hhmm.json()["runs"].is_array());
  auto until_hhmm = call("GET", "/v1/runs?until=23:59&workflow=diamond");
  EXPECT_EQ(until_hhmm.status, 200) << until_hhmm.body;

  for (const std::string bad :
       {"since=yesterday", "until=2024-13", "since=25:00", "since=12:61", "status=done",
        "status=SUCCEEDED", "limit=0", "limit=abc", "after=xyz"}) {
    auto r = call("GET", "/v1/runs?" + bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
    EXPECT_TRUE(r.json().contains("error")) << bad << " -> " << r.body;
  }
}

TEST_F(HttpApiTest, CancelRetryAndSignalCommands) {
  // Cancel a waiting run; cancelling again conflicts.
  const auto to_cancel = start_run("demo.wait");
  ASSERT_TRUE(wait_status(to_cancel, "waiting"));
  auto cancel = call("POST", "/v1/runs/" + std::to_string(to_cancel) + "/cancel");
  EXPECT_EQ(cancel.status, 202) << cancel.body;
  EXPECT_EQ(run_status(to_cancel), "cancelled");
  auto cancel_again = call("POST", "/v1/runs/" + std::to_string(to_cancel) + "/cancel");
  EXPECT_EQ(cancel_again.status, 409) << cancel_again.body;
  EXPECT_TRUE(cancel_again.json().contains("error"));
  EXPECT_EQ(call("POST", "/v1/runs/987654321/cancel").status, 404);

  // Signal a waiting run: it resumes and the payload reaches the step's output.
  const auto to_signal = start_run("demo.wait");
  ASSERT_TRUE(wait_status(to_signal, "waiting"));
  auto sig = call("POST", "/v1/runs/" + std::to_string(to_signal) + "/signal/go",
                  R"({"approved_by": "dr-7", "score": 3})");
  EXPECT_EQ(sig.status, 202) << sig.body;
  ASSERT_TRUE(wait_status(to_signal, "succeeded")) << get_run(to_signal).dump(2);
  const Json signalled = get_run(to_signal);
  const Json hold = step_of(signalled, "hold");
  EXPECT_EQ(hold["status"], "succeeded");
  EXPECT_EQ(hold["output"]["signal"], "go") << hold.dump();
  EXPECT_EQ(hold["output"]["payload"], (Json{{"approved_by", "dr-7"}, {"score", 3}}))
      << hold.dump();
  EXPECT_EQ(step_of(signalled, "after")["status"], "succeeded");
  EXPECT_EQ(call("POST", "/v1/runs/" + std::to_string(to_signal) + "/signal/go", "{}").status, 409);
  EXPECT_EQ(
      call("POST", "/v1/runs/" + std::to_string(to_signal) + "/signal/bad%20name", "{}").status,
      400);
  EXPECT_EQ(call("POST", "/v1/runs/" + std::to_string(to_signal) + "/signal/go", "{oops").status,
            400);

  // Retry of a succeeded run conflicts.
  auto retry_ok = call("POST", "/v1/runs/" + std::to_string(to_signal) + "/retry");
  EXPECT_EQ(retry_ok.status, 409) << retry_ok.body;
  EXPECT_TRUE(retry_ok.json().contains("error"));

  // Retry of a failed run: only the failed step runs again, from attempt 1, and fails again.
  const auto failing = start_run("demo.fail");
  ASSERT_TRUE(wait_status(failing, "failed"));
  Json failed = get_run(failing);
  EXPECT_EQ(step_of(failed, "boom")["status"], "failed");
  EXPECT_EQ(step_of(failed, "boom")["attempts"], 1);
  EXPECT_THAT(step_of(failed, "boom")["error"].get<std::string>(), HasSubstr("boom by design"));
  auto retry = call("POST", "/v1/runs/" + std::to_string(failing) + "/retry");
  EXPECT_EQ(retry.status, 202) << retry.body;
  ASSERT_TRUE(wait_until([&] {
    const Json r = get_run(failing);
    return r.value("status", "") == "failed" && history_count(r, "failed", "boom") == 2;
  })) << get_run(failing).dump(2);
  failed = get_run(failing);
  // Attempt numbers keep growing across an operator retry (they fence off late finishers);
  // the step gets a fresh allowance of attempts instead.
  EXPECT_EQ(step_of(failed, "boom")["attempts"], 2);
  EXPECT_EQ(history_count(failed, "started", "boom"), 2);
  EXPECT_EQ(history_count(failed, "started", "prepare"), 1) << "succeeded steps do not re-run";
  EXPECT_EQ(step_of(failed, "prepare")["status"], "succeeded");
  EXPECT_EQ(call("POST", "/v1/runs/987654321/retry").status, 404);
  EXPECT_EQ(call("POST", "/v1/runs/x1/retry").status, 400);
}

TEST_F(HttpApiTest, WorkflowsLogsHealthMetricsAndRouting) {
  const auto failing = start_run("demo.fail");
  ASSERT_TRUE(wait_status(failing, "failed"));

  auto wfs = call("GET", "/v1/workflows");
  ASSERT_EQ(wfs.status, 200) << wfs.body;
  const Json list = wfs.json()["workflows"];
  ASSERT_TRUE(list.is_array()) << wfs.body;
  Json diamond;
  for (const auto& w : list)
    if (w.value("name", "") == "diamond") diamond = w;
  ASSERT_TRUE(diamond.is_object()) << wfs.body;
  ASSERT_TRUE(diamond["versions"].is_array());
  ASSERT_EQ(diamond["versions"].size(), 1u);
  EXPECT_EQ(diamond["versions"][0]["version"], 1);
  EXPECT_TRUE(is_api_time(diamond["versions"][0]["created_at"]));

  std::string logs_body;
  ASSERT_TRUE(wait_until([&] {
    auto logs = call("GET", "/v1/logs?level=error&run=" + std::to_string(failing));
    logs_body = std::to_string(logs.status) + " " + logs.body;
    if (logs.status != 200) return false;
    const Json body = logs.json();
    for (const auto& l : body["logs"])
      if (l.value("level", "") == "error" &&
          l.value("message", "").find("step attempt failed: boom by design") == 0)
        return true;
    return false;
  })) << logs_body;
  auto all_errors = call("GET", "/v1/logs?level=error");
  ASSERT_EQ(all_errors.status, 200);
  const Json errors = all_errors.json();
  ASSERT_FALSE(errors["logs"].empty());
  for (const auto& l : errors["logs"]) EXPECT_EQ(l["level"], "error") << l.dump();
  auto bad_level = call("GET", "/v1/logs?level=garbage");
  EXPECT_EQ(bad_level.status, 400) << bad_level.body;
  EXPECT_TRUE(bad_level.json().contains("error"));

  EXPECT_EQ(call("GET", "/healthz").status, 200);
  EXPECT_EQ(call("GET", "/readyz").status, 200);
  const auto ok_run = start_run("demo.diamond", Json{{"skip_e", true}});
  ASSERT_TRUE(wait_status(ok_run, "succeeded"));
  auto metrics = call("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.header("content-type"), HasSubstr("text/plain"));
  EXPECT_THAT(metrics.body, HasSubstr("chartflow_http_requests_total"));
  EXPECT_THAT(metrics.body, HasSubstr("chartflow_runs_started_total"));
  EXPECT_THAT(metrics.body, HasSubstr("workflow=\"failing\""));
  EXPECT_THAT(metrics.body, HasSubstr("status=\"succeeded\",workflow=\"diamond\""));

  auto unknown = call("GET", "/v1/nothing-here");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_TRUE(unknown.json().contains("error"));
  auto wrong_method = call("DELETE", "/v1/runs/1");
  EXPECT_EQ(wrong_method.status, 405) << wrong_method.body;
  EXPECT_TRUE(wrong_method.json().contains("error"));
  EXPECT_EQ(call("GET", "/v1/events/demo.diamond").status, 405);
  EXPECT_EQ(call("POST", "/v1/workflows", "{}").status, 405);
}

}  // namespace
}  // namespace chartflow::testing
