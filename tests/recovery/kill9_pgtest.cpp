// The crash tests of issue 2: a real `chartflow serve` process is killed with SIGKILL half-way
// through a step and restarted; every run then finishes and no step completes twice. Once on a
// PostgreSQL that chartflow shares (leases expire), once on the embedded PostgreSQL (the
// restarted server knows its predecessor is dead and reclaims at once). And the chart
// application's two writes that leave chartflow's hands: killed inside the billing step's ledger
// write and while an insurer holds a delivery, the restarted server bills and notifies once.
// Every cluster here runs with fsync and synchronous_commit on (asserted): on the shared test
// cluster, which runs without them, a crash test could not tell a commit from a lucky cache.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <sstream>

#include "runtime/engine.hpp"
#include "runtime/pg_commands.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/durable_cluster.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

extern char** environ;

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr const char* kCrashWorkflow = R"(name: crash
on:
  - event: demo.crash
steps:
  a: { handler: noop }
  b: { handler: work, needs: [a], input: { ms: 1500 } }
  c: { handler: noop, needs: [b] }
)";

fs::path log_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" /
         (std::string(info->name()) + "-" + name + ".log");
}

// The workflows dir every serve process of a test reads.
std::unique_ptr<TempDir> crash_workflows() {
  auto dir = std::make_unique<TempDir>("cf-kill9-wf");
  std::ofstream(dir->path() / "crash.yaml") << kCrashWorkflow;
  return dir;
}

std::vector<std::int64_t> post_events(unsigned short port, int n, const std::string& token) {
  std::vector<std::int64_t> runs;
  for (int i = 0; i < n; ++i) {
    auto r = request("POST", "127.0.0.1", port, "/v1/events/demo.crash", Json{{"n", i}}.dump(),
                     with_bearer(token));
    EXPECT_EQ(r.status, 202) << r.body;
    const Json j = r.json();
    if (j.is_object() && j["runs"].is_array() && j["runs"].size() == 1)
      runs.push_back(j["runs"][0].get<std::int64_t>());
    else
      ADD_FAILURE() << "event did not start one run: " << r.body;
  }
  return runs;
}

std::vector<std::string> serve_args(const fs::path& workflows, unsigned short port) {
  return {CHARTFLOW_BINARY, "serve",           "--listen", "127.0.0.1:" + std::to_string(port),
          "--workflows",    workflows.string()};
}

// A PgTest on a durable cluster of its own.
class Kill9Test : public PgTest {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<DurableCluster>();
    ASSERT_FALSE(cluster_->dsn().empty());
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    for (const std::string setting : {"fsync", "synchronous_commit", "full_page_writes"})
      ASSERT_EQ(scalar("SHOW " + setting), "on") << setting;
  }
  void TearDown() override {
    PgTest::TearDown();
    cluster_.reset();
  }
  std::string cluster_dsn() const override { return cluster_ ? cluster_->dsn() : ""; }

  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }

 private:
  std::unique_ptr<DurableCluster> cluster_;
};

TEST_F(Kill9Test, KilledServerIsReplacedAndEveryRunFinishesOnce) {
  constexpr int kRuns = 5;
  auto workflows = crash_workflows();
  auto start_serve = [&](const std::string& name, unsigned short port) {
    auto args = serve_args(workflows->path(), port);
    for (const std::string a :
         {"--database-url", dsn().c_str(), "--lease-ms", "2000", "--poll-ms", "200"})
      args.push_back(a);
    return std::make_unique<ChildProcess>(args, log_path(name));
  };

  auto first = start_serve("first", 0);
  const unsigned short port1 = wait_listening(*first, 60s);
  ASSERT_TRUE(wait_healthy(*first, port1, 30s)) << first->log();
  const auto runs = post_events(port1, kRuns, create_token(dsn(), "operator"));
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kRuns));

  ASSERT_TRUE(wait_until(
      [&] {
        return count("SELECT count(*) FROM step_run WHERE step_key = 'b' AND status = 'running'") >
               0;
      },
      20s))
      << first->log();
  first->signal(SIGKILL);
  ASSERT_EQ(first->wait_exit(10s), std::optional<int>(128 + SIGKILL));
  const int done_before_restart =
      count("SELECT count(*) FROM step_run WHERE step_key = 'b' AND status = 'succeeded'");
  EXPECT_LT(done_before_restart, kRuns);

  auto second = start_serve("second", 0);
  const unsigned short port2 = wait_listening(*second, 60s);
  ASSERT_TRUE(wait_healthy(*second, port2, 30s)) << second->log();
  ASSERT_TRUE(wait_until(
      [&] {
        return count("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'") == kRuns;
      },
      60s))
      << scalar("SELECT string_agg(run_id || '/' || step_key || ':' || status, ' ') FROM step_run")
      << "\n"
      << second->log();

  EXPECT_EQ(count("SELECT count(*) FROM step_run WHERE status = 'succeeded'"), kRuns * 3);
  for (const auto id : runs) {
    const std::string run = std::to_string(id);
    EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE run_id = " + run +
                    " AND step = 'b' AND type = 'succeeded'"),
              1)
        << "run " << run << ": step b completed more or less than once";
  }
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT run_id, step FROM run_history WHERE step IS NOT "
                  "NULL AND type = 'succeeded' GROUP BY run_id, step HAVING count(*) > 1) x"),
            0)
      << "no step completes twice";
  EXPECT_GE(count("SELECT count(DISTINCT run_id) FROM run_history WHERE step = 'b' AND type = "
                  "'lease_expired'"),
            1)
      << "the killed step must come back through lease expiry";
  // The killed process's attempt shows as started but never finished by it.
  EXPECT_GE(count("SELECT count(*) FROM run_history WHERE step = 'b' AND type = 'started'"),
            kRuns + 1);

  second->signal(SIGTERM);
  EXPECT_EQ(second->wait_exit(20s), std::optional<int>(0)) << second->log();
}

// The embedded PostgreSQL under a data dir. If a test fails half-way, the cluster a killed serve
// left behind is stopped here so nothing outlives the test.
class Kill9EmbeddedTest : public ::testing::Test {
 protected:
  void SetUp() override { data_ = std::make_unique<TempDir>("cf-kill9-data"); }

  void TearDown() override {
    const fs::path pgdata = data_->path() / "pg" / "data";
    if (fs::exists(pgdata / "postmaster.pid")) {
      std::string bindir;
      for (const auto& e : fs::directory_iterator("/usr/lib/postgresql"))
        if (fs::exists(e.path() / "bin" / "pg_ctl") && e.path().string() > bindir)
          bindir = e.path().string();
      const std::string pg_ctl =
          bindir + "/bin/pg_ctl stop -m immediate -D '" + pgdata.string() + "' >/dev/null 2>&1";
      const std::string cmd =
          ::geteuid() == 0 ? "cd / && runuser -u postgres -- " + pg_ctl : pg_ctl;
      if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "could not stop " << pgdata;
    }
    data_.reset();
  }

  Json get_run(unsigned short port, std::int64_t id) {
    try {
      auto r = request("GET", "127.0.0.1", port, "/v1/runs/" + std::to_string(id), "",
                       with_bearer(token_), 5s);
      if (r.status == 200) return r.json();
    } catch (const std::exception&) {
    }
    return Json();
  }

  std::unique_ptr<TempDir> data_;
  std::string token_;
};

TEST_F(Kill9EmbeddedTest, RestartOnTheDataDirReclaimsAtOnce) {
  constexpr int kRuns = 3;
  auto workflows = crash_workflows();
  auto start_serve = [&](const std::string& name, unsigned short port,
                         const std::optional<fs::path>& err = std::nullopt) {
    auto args = serve_args(workflows->path(), port);
    args.push_back("--data-dir");
    args.push_back(data_->path().string());
    return std::make_unique<ChildProcess>(args, log_path(name), err);
  };

  auto first = start_serve("first", 0);
  const unsigned short port1 = wait_listening(*first, 60s);
  ASSERT_TRUE(wait_healthy(*first, port1, 60s)) << first->log();
  // Through the running server's cluster socket, as an operator's script would.
  token_ = create_token_cli({"--data-dir", data_->path().string()}, "operator", "kill9",
                            log_path("tokens"));
  {
    std::string conninfo = read_file(data_->path() / runtime::pg_commands::kConninfoFile);
    while (!conninfo.empty() && conninfo.back() == '\n') conninfo.pop_back();
    pqxx::connection c(conninfo);
    pqxx::nontransaction tx(c);
    for (const std::string setting : {"fsync", "synchronous_commit", "full_page_writes"})
      EXPECT_EQ(std::string(tx.exec("SHOW " + setting)[0][0].c_str()), "on") << setting;
  }
  const auto runs = post_events(port1, kRuns, token_);
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kRuns));
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto id : runs) {
          const Json run = get_run(port1, id);
          if (!run.is_object()) continue;
          for (const auto& s : run["steps"])
            if (s["name"] == "b" && s["status"] == "running") return true;
        }
        return false;
      },
      20s))
      << first->log();
  first->signal(SIGKILL);
  ASSERT_EQ(first->wait_exit(10s), std::optional<int>(128 + SIGKILL));

  // Default lease (15 s): only the restart's reclaim can finish the runs before it would lapse.
  const auto restarted = std::chrono::steady_clock::now();
  auto second = start_serve("second", 0);
  const unsigned short port2 = wait_listening(*second, 60s);
  ASSERT_TRUE(wait_healthy(*second, port2, 60s)) << second->log();
  auto all_succeeded = [&] {
    for (const auto id : runs)
      if (get_run(port2, id).value("status", "") != "succeeded") return false;
    return true;
  };
  ASSERT_TRUE(wait_until(all_succeeded, 30s)) << second->log();
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, runtime::kDefaultLease)
      << "the restarted server should reclaim its dead predecessor's steps at once";

  int reclaimed = 0;
  for (const auto id : runs) {
    const Json run = get_run(port2, id);
    ASSERT_TRUE(run.is_object());
    for (const auto& s : run["steps"]) EXPECT_EQ(s["status"], "succeeded") << s.dump();
    int b_succeeded = 0;
    for (const auto& h : run["history"]) {
      if (h["step"] != "b") continue;
      if (h["type"] == "succeeded") ++b_succeeded;
      if (h["type"] == "lease_expired") {
        ++reclaimed;
        EXPECT_THAT(h["detail"].dump(), HasSubstr("restarted")) << h.dump();
      }
    }
    EXPECT_EQ(b_succeeded, 1) << "run " << id << ": step b completed more or less than once\n"
                              << run["history"].dump(1);
  }
  EXPECT_GE(reclaimed, 1);

  // A second server on the same data dir is refused while this one runs.
  const fs::path intruder_err = log_path("intruder-stderr");
  auto intruder = start_serve("intruder", 0, intruder_err);
  const auto intruder_code = intruder->wait_exit(30s);
  ASSERT_TRUE(intruder_code.has_value()) << "a second serve on the data dir kept running";
  EXPECT_NE(*intruder_code, 0);
  EXPECT_THAT(intruder->err_log(), HasSubstr("in use")) << intruder->log();
  EXPECT_TRUE(wait_healthy(*second, port2, 5s)) << "the running server must be unaffected";

  // A clean shutdown stops the embedded cluster too.
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait_exit(60s), std::optional<int>(0)) << second->log();
  EXPECT_FALSE(fs::exists(data_->path() / "pg" / "data" / "postmaster.pid"))
      << "the embedded PostgreSQL is still running after a clean shutdown";
}

// The chart application's billing and insurer delivery, as `chartflow serve` runs them: the
// ledger rows, the outbox rows and the step's completion commit together, and the delivery
// goes out under the notification's key until an answer is recorded.
constexpr const char* kBillWorkflow = R"(name: bill-crash
on:
  - event: chart.uploaded
steps:
  billing:
    handler: billing
    when: { path: /event/has_billable, equals: true }
  insurance:
    handler: insurance
    needs: [billing]
    when: { path: /event/has_billable, equals: true }
    retry: { max_attempts: 5 }
)";
// The attempts each step may spend: a crash must leave all but the one running.
constexpr int kBillingAttempts = 3;  // the default
constexpr int kInsuranceAttempts = 5;

// Charts whose claims are billed to a payor the default insurer endpoint serves.
constexpr const char* kCharts[] = {
    "enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-8b7f6202.json",
    "enc-alberto-atencio-20070604-emer-emergency-room-admission-4ce65733.json",
    "enc-alejandro-riojas-20081214-emer-emergency-encounter-0e369760.json"};
constexpr int kChartCount = 3;

class Kill9ChartTest : public Kill9Test {
 protected:
  void SetUp() override {
    Kill9Test::SetUp();
    if (HasFatalFailure()) return;
    workflows_ = std::make_unique<TempDir>("cf-kill9-charts");
    const fs::path source = fs::path(CHARTFLOW_SOURCE_DIR) / "workflows";
    for (const char* sub : {"settings", "rules"})
      fs::copy(source / sub, workflows_->path() / sub, fs::copy_options::recursive);
    std::ofstream(workflows_->path() / "bill-crash.yaml") << kBillWorkflow;
    fs::create_directories(workflows_->path() / "bills");
    // Read by settings/insurers.yaml and settings/bill-delivery.yaml when serve starts.
    ::setenv("CHARTFLOW_BILL_DIR", (workflows_->path() / "bills").c_str(), 1);
    ::unsetenv("CHARTFLOW_BILL_WEBHOOK_URL");
  }

  void TearDown() override {
    ::unsetenv("CHARTFLOW_INSURER_URL");
    ::unsetenv("CHARTFLOW_BILL_DIR");
    workflows_.reset();
    Kill9Test::TearDown();
  }

  std::unique_ptr<ChildProcess> start_serve(const std::string& name, unsigned short port,
                                            const FakeHttpServer& insurer) {
    ::setenv("CHARTFLOW_INSURER_URL", insurer.url("/insurer").c_str(), 1);
    auto args = serve_args(workflows_->path(), port);
    for (const std::string a :
         {"--database-url", dsn().c_str(), "--lease-ms", "2000", "--poll-ms", "200"})
      args.push_back(a);
    return std::make_unique<ChildProcess>(args, log_path(name));
  }

  // Uploads the charts; the run each started.
  std::vector<std::int64_t> upload_charts(unsigned short port) {
    const std::string token = create_token(dsn(), "uploader");
    std::vector<std::int64_t> runs;
    for (int i = 0; i < kChartCount; ++i) {
      const std::string body =
          read_file(fs::path(CHARTFLOW_SOURCE_DIR) / "tests/data/charts" / kCharts[i]);
      auto r = request("PUT", "127.0.0.1", port, "/v1/charts/kill9-" + std::to_string(i), body,
                       with_bearer(token, {{"Content-Type", "application/fhir+json"}}));
      EXPECT_EQ(r.status, 202) << r.body;
      const Json j = r.json();
      if (j.is_object() && j["runs"].is_array() && j["runs"].size() == 1)
        runs.push_back(j["runs"][0].get<std::int64_t>());
      else
        ADD_FAILURE() << "upload did not start one run: " << r.body;
    }
    return runs;
  }

  bool wait_all_succeeded(int runs, std::chrono::milliseconds timeout) {
    return wait_until(
        [&] {
          return count("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'") == runs;
        },
        timeout);
  }

  std::string steps_text() {
    return scalar(
        "SELECT string_agg(run_id || '/' || step_key || ':' || status || ' ' || attempt || '/' || "
        "max_attempts, ', ') FROM step_run");
  }

  // What the crash must not have changed: each step completed once, in the attempt the crash
  // gave back; each chart billed once; each notification delivered and, at the insurer, one
  // business effect per key (a repeated delivery carries the key and body of the first).
  void expect_billed_and_notified_once(const std::vector<std::int64_t>& runs,
                                       const FakeHttpServer& insurer) {
    for (const auto id : runs) {
      for (const std::string step : {"billing", "insurance"})
        EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE run_id = " + std::to_string(id) +
                        " AND step = '" + step + "' AND type = 'succeeded'"),
                  1)
            << "run " << id << ": " << step << " completed more or less than once";
    }
    EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE type IN ('failed', 'retried', "
                    "'timed_out', 'parked')"),
              0)
        << "a crash is not a failed attempt";
    EXPECT_EQ(scalar("SELECT string_agg(run_id || '/' || step_key || ' ' || attempt || '/' || "
                     "max_attempts, ', ') FROM step_run WHERE max_attempts - attempt <> CASE "
                     "step_key WHEN 'billing' THEN " +
                     std::to_string(kBillingAttempts - 1) + " ELSE " +
                     std::to_string(kInsuranceAttempts - 1) + " END"),
              "")
        << "steps that lost attempts to the crash";

    EXPECT_EQ(count("SELECT count(*) - count(DISTINCT (chart_id, source_ref)) FROM ledger_entry"),
              0);
    // The surviving billing attempt added every entry of its chart: had the killed attempt's
    // insert outlived it, the survivor would have found the entries there and added none.
    EXPECT_EQ(scalar("SELECT string_agg(c.chart_id, ' ') FROM chart c WHERE (SELECT count(*) "
                     "FROM ledger_entry l WHERE l.chart_id = c.chart_id) = 0"),
              "")
        << "charts without ledger entries";
    EXPECT_EQ(count("SELECT count(*) FROM ledger_entry"),
              count("SELECT sum((output->>'entries_added')::int) FROM step_run WHERE step_key = "
                    "'billing'"));

    std::map<std::string, Json> outbox;
    {
      pqxx::connection c(dsn());
      pqxx::nontransaction tx(c);
      for (const auto& row : tx.exec("SELECT idempotency_key, payload::text, status FROM "
                                     "insurer_outbox")) {
        outbox[row[0].c_str()] = Json::parse(row[1].c_str());
        EXPECT_STREQ(row[2].c_str(), "delivered") << row[0].c_str();
      }
    }
    EXPECT_GE(outbox.size(), static_cast<std::size_t>(kChartCount));
    std::map<std::string, int> received;
    for (const auto& r : insurer.requests()) {
      const std::string key = r.header("Idempotency-Key");
      ++received[key];
      const auto it = outbox.find(key);
      if (it == outbox.end()) {
        ADD_FAILURE() << "the insurer received a key no notification has: " << key;
        continue;
      }
      EXPECT_EQ(Json::parse(r.body), it->second)
          << "a repeated delivery of " << key << " differs from the notification";
    }
    for (const auto& [key, payload] : outbox)
      EXPECT_GE(received[key], 1) << "the insurer never received " << key;
  }

  std::unique_ptr<TempDir> workflows_;
};

TEST_F(Kill9ChartTest, KilledDuringTheBillingWriteBillsEachChartOnce) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  auto first = start_serve("first", 0, insurer);
  const unsigned short port1 = wait_listening(*first, 60s);
  ASSERT_TRUE(wait_healthy(*first, port1, 30s)) << first->log();

  // The billing step writes the ledger and then the insurer outbox, in one transaction with its
  // completion. The outbox is locked against writes: each billing step stops with its ledger rows
  // written and its transaction open, where a crash must lose them all.
  pqxx::connection blocker(dsn());
  auto lock = std::make_unique<pqxx::work>(blocker);
  lock->exec("LOCK TABLE insurer_outbox IN SHARE MODE");
  const auto runs = upload_charts(port1);
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kChartCount));
  ASSERT_TRUE(wait_until(
      [&] {
        return count(
                   "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                   "wait_event_type = 'Lock' AND query LIKE '%INSERT INTO insurer_outbox%'") > 0;
      },
      30s))
      << steps_text() << "\n"
      << first->log();
  first->signal(SIGKILL);
  ASSERT_EQ(first->wait_exit(10s), std::optional<int>(128 + SIGKILL));
  lock->abort();
  lock.reset();
  EXPECT_EQ(count("SELECT count(*) FROM run_history WHERE step = 'billing' AND type = "
                  "'succeeded'"),
            0)
      << "no billing finished before the kill";
  // The killed transaction's ledger rows are gone once its server process has seen the client is.
  EXPECT_TRUE(wait_until(
      [&] {
        return count(
                   "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                   "query LIKE '%INSERT INTO insurer_outbox%' AND state <> 'idle'") == 0;
      },
      10s));
  EXPECT_EQ(count("SELECT count(*) FROM ledger_entry"), 0)
      << "ledger rows of a billing that never completed were kept";

  auto second = start_serve("second", 0, insurer);
  const unsigned short port2 = wait_listening(*second, 60s);
  ASSERT_TRUE(wait_healthy(*second, port2, 30s)) << second->log();
  ASSERT_TRUE(wait_all_succeeded(kChartCount, 60s)) << steps_text() << "\n" << second->log();

  EXPECT_GE(count("SELECT count(*) FROM run_history WHERE step = 'billing' AND type = "
                  "'lease_expired'"),
            1)
      << "the killed billing must come back through lease expiry";
  expect_billed_and_notified_once(runs, insurer);
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait_exit(20s), std::optional<int>(0)) << second->log();
}

TEST_F(Kill9ChartTest, KilledDuringAnInsurerDeliveryNotifiesOnce) {
  // The insurer holds the first request open (it has the notification; its answer is still to
  // come) until the sender is dead.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  auto release = [&] {
    std::lock_guard l(mu);
    released = true;
    cv.notify_all();
  };
  FakeHttpServer insurer([&](const ReceivedRequest&, int index) {
    if (index == 0) {
      std::unique_lock l(mu);
      cv.wait_for(l, 30s, [&] { return released; });
    }
    return 200;
  });
  struct Release {
    std::function<void()> f;
    ~Release() { f(); }
  } release_at_exit{release};

  auto first = start_serve("first", 0, insurer);
  const unsigned short port1 = wait_listening(*first, 60s);
  ASSERT_TRUE(wait_healthy(*first, port1, 30s)) << first->log();
  const auto runs = upload_charts(port1);
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kChartCount));
  ASSERT_TRUE(wait_until([&] { return !insurer.requests().empty(); }, 30s)) << steps_text() << "\n"
                                                                            << first->log();
  const std::string held_key = insurer.requests().front().header("Idempotency-Key");
  first->signal(SIGKILL);
  ASSERT_EQ(first->wait_exit(10s), std::optional<int>(128 + SIGKILL));
  release();
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE idempotency_key = '" + held_key +
                  "' AND status = 'pending'"),
            1)
      << "the held notification must still be pending: its answer never reached chartflow";

  auto second = start_serve("second", 0, insurer);
  const unsigned short port2 = wait_listening(*second, 60s);
  ASSERT_TRUE(wait_healthy(*second, port2, 30s)) << second->log();
  ASSERT_TRUE(wait_all_succeeded(kChartCount, 60s)) << steps_text() << "\n" << second->log();

  EXPECT_GE(count("SELECT count(*) FROM run_history WHERE step = 'insurance' AND type = "
                  "'lease_expired'"),
            1)
      << "the killed delivery must come back through lease expiry";
  int held_deliveries = 0;
  for (const auto& r : insurer.requests())
    if (r.header("Idempotency-Key") == held_key) ++held_deliveries;
  EXPECT_GE(held_deliveries, 2) << "the delivery the crash cut off must be repeated, under its key";
  expect_billed_and_notified_once(runs, insurer);
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait_exit(20s), std::optional<int>(0)) << second->log();
}

}  // namespace
}  // namespace chartflow::testing
