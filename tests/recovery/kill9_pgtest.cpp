// The crash test of issue 2: a real `chartflow serve` process is killed with SIGKILL half-way
// through a step and restarted; every run then finishes and no step completes twice. Once on a
// shared PostgreSQL (leases expire), once on the embedded PostgreSQL (the restarted server
// knows its predecessor is dead and reclaims at once).
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

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
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

class Kill9Test : public PgTest {
 protected:
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }
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

  const unsigned short port1 = free_port();
  auto first = start_serve("first", port1);
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

  const unsigned short port2 = free_port();
  auto second = start_serve("second", port2);
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

  const unsigned short port1 = free_port();
  auto first = start_serve("first", port1);
  ASSERT_TRUE(wait_healthy(*first, port1, 60s)) << first->log();
  // Through the running server's cluster socket, as an operator's script would.
  token_ = create_token_cli({"--data-dir", data_->path().string()}, "operator", "kill9",
                            log_path("tokens"));
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

  // Default lease (15 s): only the restart's reclaim can finish the runs within ~10 s.
  const unsigned short port2 = free_port();
  const auto restarted = std::chrono::steady_clock::now();
  auto second = start_serve("second", port2);
  ASSERT_TRUE(wait_healthy(*second, port2, 60s)) << second->log();
  auto all_succeeded = [&] {
    for (const auto id : runs)
      if (get_run(port2, id).value("status", "") != "succeeded") return false;
    return true;
  };
  ASSERT_TRUE(wait_until(all_succeeded, 30s)) << second->log();
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 11s)
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
  const unsigned short port3 = free_port();
  const fs::path intruder_err = log_path("intruder-stderr");
  auto intruder = start_serve("intruder", port3, intruder_err);
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

}  // namespace
}  // namespace chartflow::testing
