// Performance work, tested for what it must not change:
// - the metrics of a real `chartflow serve` (issue #5): GET /metrics, scraped after a run, passes
//   `promtool check metrics` and carries the database pool gauges and the query latency
//   histogram by statement kind, whose labels hold no ids;
// - steps finished together in one statement (issue #2's batching) count their runs and their
//   dependents down once per finished step, also when several are of one run;
// - a batch of events inserted with one statement gets each event its own run, in order.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "http/server.hpp"
#include "store/store.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The port the kernel hands out next for 127.0.0.1 (bound, then released).
class MetricsTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    const auto log =
        fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" / (schema() + "-metrics-serve.log");
    serve_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{CHARTFLOW_BINARY, "serve", "--listen", "127.0.0.1:0",
                                 "--database-url", dsn(), "--workflows",
                                 std::string(CHARTFLOW_SOURCE_DIR) + "/workflows"},
        log);
    port_ = wait_listening(*serve_, 30s);
    ASSERT_NE(port_, 0) << serve_->log();
    ASSERT_TRUE(wait_until(
        [&] {
          try {
            return request("GET", "127.0.0.1", port_, "/readyz", "", {}, 1s).status == 200;
          } catch (const std::exception&) {
            return !serve_->running();  // exited: reported below
          }
        },
        30s));
    ASSERT_TRUE(serve_->running()) << serve_->log();
    token_ = create_token(dsn(), "operator");
  }

  // Starts a diamond run and waits for it to succeed, so every kind of statement has run.
  void run_diamond() {
    auto r = request("POST", "127.0.0.1", port_, "/v1/events/demo.diamond", R"({"skip_e": false})",
                     with_bearer(token_));
    ASSERT_EQ(r.status, 202) << r.body;
    const auto run = r.json()["runs"][0].get<std::int64_t>();
    ASSERT_TRUE(wait_until(
        [&] {
          return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run)) ==
                 "succeeded";
        },
        20s))
        << serve_->log();
  }

  std::string scrape() {
    auto r = request("GET", "127.0.0.1", port_, "/metrics", "", with_bearer(token_));
    EXPECT_EQ(r.status, 200);
    return r.body;
  }

  unsigned short port_ = 0;
  std::string token_;
  std::unique_ptr<ChildProcess> serve_;
};

TEST_F(MetricsTest, RealMetricsPassPromtool) {
  const std::string tool = promtool();
  ASSERT_FALSE(tool.empty()) << kNoPromtool;
  run_diamond();
  const std::string body = scrape();
  const fs::path file = fs::temp_directory_path() / (schema() + "-metrics.txt");
  std::ofstream(file) << body;
  auto r = run_command(tool + " check metrics < " + file.string());
  fs::remove(file);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- /metrics ---\n" << body;
  EXPECT_EQ(r.output, "") << "promtool lint findings";
}

TEST_F(MetricsTest, DatabasePoolAndQueryLatencyAreExported) {
  run_diamond();
  const std::string body = scrape();
  // The API's pool: /metrics itself just returned its connection, so one is idle at least.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      body, m, std::regex(R"(chartflow_db_pool_connections\{state="idle"\} ([0-9.e+]+))")))
      << body;
  EXPECT_GE(std::stod(m[1]), 1.0);
  EXPECT_TRUE(
      std::regex_search(body, std::regex(R"(chartflow_db_pool_connections\{state="in_use"\} )")))
      << body;
  EXPECT_TRUE(std::regex_search(body, std::regex(R"(chartflow_db_pool_connections_max 8)")))
      << body;
  // The upload slots: none held or waiting after the run, as many as the machine has cores.
  EXPECT_TRUE(
      std::regex_search(body, std::regex(R"(chartflow_http_upload_slots\{state="in_use"\} 0\n)")))
      << body;
  EXPECT_TRUE(
      std::regex_search(body, std::regex(R"(chartflow_http_upload_slots\{state="waiting"\} 0\n)")))
      << body;
  EXPECT_TRUE(
      std::regex_search(body, std::regex("chartflow_http_upload_slots_max " +
                                         std::to_string(http::default_upload_slots()) + "\n")))
      << body;

  // Query latency by kind: the ingest, the workers' claims and step finishes were all observed.
  std::set<std::string> kinds;
  const std::regex count(
      R"re(chartflow_db_query_duration_seconds_count\{kind="([^"]*)"\} (\d+))re");
  for (auto it = std::sregex_iterator(body.begin(), body.end(), count);
       it != std::sregex_iterator(); ++it) {
    kinds.insert((*it)[1]);
    EXPECT_GT(std::stoll((*it)[2]), 0) << (*it)[0];
    EXPECT_FALSE(std::regex_search((*it)[1].str(), std::regex("[0-9]")))
        << "a kind label must not carry ids: " << (*it)[0];
  }
  // Steps finish with their batch's commit (one statement with the next claim).
  for (const char* k : {"ingest", "claim", "batch_commit"})
    EXPECT_TRUE(kinds.count(k)) << k << " missing in\n" << body;
}

// a fans out to b and c, which d joins: with one worker, b and c are claimed together and finish
// in one statement, which must count d's two needs and the run's two steps down. Eight runs:
// their b and c steps, all made ready by one commit, fill one batch of 16 exactly (steps made
// ready at the same moment are claimed in no particular order).
constexpr const char* kFanIn = R"(name: fan-in
on: [{ event: perf.fan_in }]
steps:
  a: { handler: noop }
  b: { handler: noop, needs: [a] }
  c: { handler: noop, needs: [a] }
  d: { handler: noop, needs: [b, c] }
)";

class BatchedFinishTest : public PgTest {};

TEST_F(BatchedFinishTest, FanInFinishedInOneStatementReleasesTheJoinOnce) {
  runtime::EngineSettings settings;
  settings.workers = 1;
  EngineHarness h(dsn(), {kFanIn}, nullptr, settings);
  std::vector<std::int64_t> runs;
  static_assert(runtime::kDefaultBatchSize == 16);
  for (int i = 0; i < 8; ++i) runs.push_back(h.start_run("perf.fan_in", {{"n", i}}));
  h.start();
  for (const auto id : runs) {
    ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump(2);
    // b and c finished by one statement at commit: the same finish time (the statement's).
    EXPECT_EQ(h.step(id, "b").at("finished_at"), h.step(id, "c").at("finished_at"))
        << h.run(id).dump(2);
    EXPECT_EQ(h.step(id, "d").at("status"), "succeeded");
  }
  const std::string ids = std::to_string(runs.front()) + " AND " + std::to_string(runs.back());
  EXPECT_EQ(
      scalar("SELECT count(*) FROM workflow_run WHERE remaining_steps <> 0 AND id BETWEEN " + ids),
      "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'succeeded' AND step IS NOT "
                   "NULL AND run_id BETWEEN " +
                   ids),
            "32")
      << "every step succeeds exactly once";
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'succeeded' AND step IS NULL "
                   "AND run_id BETWEEN " +
                   ids),
            "8")
      << "every run succeeds exactly once";
}

TEST_F(BatchedFinishTest, EventBatchStoresEachEventWithItsOwnRun) {
  EngineHarness h(dsn(), {kFanIn});
  std::vector<store::EventInput> events;
  for (int i = 0; i < 6; ++i) {
    store::EventInput ev;
    ev.type = i == 3 ? "perf.nobody_listens" : "perf.fan_in";
    ev.body = {{"n", i}};
    ev.subject = "chart-" + std::to_string(i);
    if (i == 4) ev.dedup_key = "key-4";  // dedup keys take the one-by-one path
    if (i == 5) ev.dedup_key = "key-4";  // the same key again: a duplicate, nothing new
    events.push_back(std::move(ev));
  }
  const auto results = h.engine().ingest_batch(events);
  ASSERT_EQ(results.size(), events.size());
  EXPECT_TRUE(results[3].run_ids.empty()) << "no workflow listens to that event type";
  EXPECT_TRUE(results[5].duplicate);
  EXPECT_EQ(results[5].run_ids, results[4].run_ids);
  for (int i : {0, 1, 2, 4}) {
    ASSERT_EQ(results[i].run_ids.size(), 1u) << i;
    const std::string run = std::to_string(results[i].run_ids[0]);
    EXPECT_EQ(
        scalar("SELECT e.body->>'n' || '/' || r.subject || '/' || (r.event_id = " +
               std::to_string(results[i].event_id) +
               ")::text FROM workflow_run r JOIN event e ON e.id = r.event_id WHERE r.id = " + run),
        std::to_string(i) + "/chart-" + std::to_string(i) + "/true");
    EXPECT_EQ(scalar("SELECT string_agg(step_key || ':' || status, ' ' ORDER BY step_key) FROM "
                     "step_run WHERE run_id = " +
                     run),
              "a:ready b:pending c:pending d:pending");
    EXPECT_EQ(
        scalar("SELECT count(*) FROM run_history WHERE type = 'scheduled' AND run_id = " + run),
        "1");
  }
  h.start();
  for (int i : {0, 1, 2, 4}) EXPECT_TRUE(h.wait_status(results[i].run_ids[0], "succeeded"));
}

}  // namespace
// Step rows updated by someone else while a batch commits (a worker's lease renewal does so
// for every step it holds) must not make the batch's finishes go missing: step_commit locks
// the rows it finishes before it looks them up. Without that, a finish whose row a renewal had
// just rewritten was dropped and the step sat "running" until its lease ran out.
TEST_F(BatchedFinishTest, FinishesHoldWhileLeasesAreRenewedConcurrently) {
  runtime::EngineSettings settings;
  settings.workers = 2;
  settings.lease = std::chrono::minutes(2);  // a lost finish would outlast the wait below
  EngineHarness h(dsn(), {kFanIn}, nullptr, settings);
  std::atomic<bool> stop{false};
  int renewed = 0;  // the renewer's alone until it is joined
  std::thread renewer([&] {
    store::Store s(dsn());
    while (!stop) {
      // Every worker's heartbeat at once, through the store's own call: the running attempts,
      // renewed for their owners.
      std::map<std::string, std::vector<store::StepAttempt>> running;
      s.with_autocommit_sql([&](Sql& sql) {
        const auto rows = sql.query(
            "SELECT lease_owner, run_id, step_key, attempt FROM step_run WHERE status = "
            "'running' AND lease_owner IS NOT NULL");
        for (const auto& row : rows)
          running[row.at("lease_owner").get<std::string>()].push_back(
              {std::stoll(row.at("run_id").get<std::string>()),
               row.at("step_key").get<std::string>(),
               std::stoi(row.at("attempt").get<std::string>())});
      });
      for (const auto& [owner, attempts] : running)
        renewed += s.heartbeat(owner, settings.lease, attempts);
    }
  });
  std::vector<std::int64_t> runs;
  for (int i = 0; i < 150; ++i) runs.push_back(h.start_run("perf.fan_in", {{"n", i}}));
  h.start();
  for (const auto id : runs) EXPECT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump(2);
  stop = true;
  renewer.join();
  EXPECT_GT(renewed, 0) << "the renewals never overlapped a running step, so nothing was tested";
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'lease_expired'"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM run_history WHERE type = 'succeeded' AND step IS NOT "
                   "NULL"),
            "600");
}

}  // namespace chartflow::testing
