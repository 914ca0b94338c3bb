// Issue #15 item 3, end to end: a real `chartflow serve` on its embedded PostgreSQL whose
// postmaster is killed with SIGKILL. Before, serve stayed up for ever with /healthz 200 and no
// database. Now it restarts the cluster and carries on, and when the cluster cannot start,
// /healthz answers 503 so that a service manager restarts the process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>

#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Json = nlohmann::json;

fs::path log_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" /
         (std::string(info->name()) + "-" + name + ".log");
}

// The end of a process's log: enough to see what it did, short enough to read.
std::string log_tail(const ChildProcess& p, std::size_t lines = 60) {
  const std::string log = p.log();
  std::size_t pos = log.size();
  for (std::size_t n = 0; n <= lines && pos != std::string::npos && pos > 0; ++n)
    pos = log.rfind('\n', pos - 1);
  return pos == std::string::npos ? log : log.substr(pos + 1);
}

class EmbeddedPostmasterKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = std::make_unique<TempDir>("cf-pmkill-data");
    workflows_ = std::make_unique<TempDir>("cf-pmkill-wf");
    std::ofstream(workflows_->path() / "ping.yaml")
        << "name: ping\non:\n  - event: demo.ping\nsteps:\n  a: { handler: noop }\n";
  }

  // Whatever happened, no cluster outlives the test.
  void TearDown() override {
    if (fs::exists(pgdata() / "postmaster.pid")) {
      std::string bindir;
      for (const auto& e : fs::directory_iterator("/usr/lib/postgresql"))
        if (fs::exists(e.path() / "bin" / "pg_ctl") && e.path().string() > bindir)
          bindir = e.path().string();
      const std::string pg_ctl =
          bindir + "/bin/pg_ctl stop -m immediate -D '" + pgdata().string() + "' >/dev/null 2>&1";
      const std::string cmd =
          ::geteuid() == 0 ? "cd / && runuser -u postgres -- " + pg_ctl : pg_ctl;
      if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "could not stop " << pgdata();
    }
    data_.reset();
  }

  fs::path pgdata() const { return data_->path() / "pg" / "data"; }

  void kill_postmaster() {
    std::ifstream in(pgdata() / "postmaster.pid");
    long pid = 0;
    ASSERT_TRUE(in >> pid && pid > 0);
    ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
  }

  int get_status(const std::string& target, const std::string& token = "",
                 std::string* body = nullptr) {
    try {
      auto r =
          request("GET", "127.0.0.1", port_, target, "",
                  token.empty() ? std::map<std::string, std::string>{} : with_bearer(token), 5s);
      if (body) *body = r.body;
      return r.status;
    } catch (const std::exception&) {
      return 0;
    }
  }

  // The run an event posted now starts, once the API can store it.
  std::optional<std::int64_t> post_ping(const std::string& token) {
    try {
      auto r =
          request("POST", "127.0.0.1", port_, "/v1/events/demo.ping", "{}", with_bearer(token), 5s);
      const Json j = Json::parse(r.body, nullptr, false);
      if (r.status == 202 && j.is_object() && j.contains("runs") && j["runs"].size() == 1)
        return j["runs"][0].get<std::int64_t>();
    } catch (const std::exception&) {
    }
    return std::nullopt;
  }

  std::unique_ptr<TempDir> data_;
  std::unique_ptr<TempDir> workflows_;
  unsigned short port_ = 0;
};

TEST_F(EmbeddedPostmasterKillTest, ServeRestartsItsClusterAndHealthzSaysWhenItCannot) {
  ChildProcess serve({CHARTFLOW_BINARY, "serve", "--listen", "127.0.0.1:0", "--workflows",
                      workflows_->path().string(), "--data-dir", data_->path().string()},
                     log_path("serve"));
  port_ = wait_listening(serve, 60s);
  ASSERT_TRUE(port_ != 0 && wait_healthy(serve, port_, 60s)) << log_tail(serve);
  const std::string token = create_token_cli({"--data-dir", data_->path().string()}, "operator",
                                             "pmkill", log_path("tokens"));

  kill_postmaster();
  std::optional<std::int64_t> run;
  ASSERT_TRUE(wait_until([&] { return (run = post_ping(token)).has_value(); }, 60s))
      << "serve never stored an event after its PostgreSQL was killed\n"
      << log_tail(serve);
  ASSERT_TRUE(wait_until(
      [&] {
        std::string body;
        if (get_status("/v1/runs/" + std::to_string(*run), token, &body) != 200) return false;
        const Json j = Json::parse(body, nullptr, false);
        return j.is_object() && j.value("status", "") == "succeeded";
      },
      30s))
      << log_tail(serve);
  std::string metrics;
  EXPECT_EQ(get_status("/metrics", token, &metrics), 200);
  EXPECT_THAT(metrics, HasSubstr("chartflow_embedded_postgres_restarts_total 1"));
  EXPECT_EQ(get_status("/healthz"), 200);

  // A cluster that cannot start (here its configuration, which the running server never
  // rereads) makes the process unhealthy once the restarts keep failing (5 with the defaults).
  const fs::path conf = pgdata() / "postgresql.conf";
  std::string good_conf;
  {
    std::ifstream in(conf);
    good_conf.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream(conf, std::ios::app) << "\nshared_buffers = 'not a size'\n";
  kill_postmaster();
  std::string health;
  ASSERT_TRUE(wait_until([&] { return get_status("/healthz", "", &health) == 503; }, 60s))
      << log_tail(serve);
  const Json reason = Json::parse(health, nullptr, false);
  ASSERT_TRUE(reason.is_object()) << health;
  EXPECT_EQ(reason.value("status", ""), "unhealthy") << health;
  EXPECT_THAT(reason.value("reason", ""), HasSubstr("embedded PostgreSQL failed to restart"));
  EXPECT_THAT(serve.log(), HasSubstr("embedded_postgres_restart_failed"));

  // Mended, the next attempt (at most 10 s later) brings it back.
  std::ofstream(conf, std::ios::trunc) << good_conf;
  ASSERT_TRUE(wait_until(
      [&] { return get_status("/healthz") == 200 && get_status("/readyz") == 200; }, 60s))
      << log_tail(serve);
  EXPECT_TRUE(post_ping(token).has_value());

  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait_exit(60s), std::optional<int>(0)) << log_tail(serve);
  EXPECT_FALSE(fs::exists(pgdata() / "postmaster.pid"))
      << "a deliberate stop must not be taken for a crash and restarted";
}

}  // namespace
}  // namespace chartflow::testing
