#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>
#include <thread>

#include "runtime/embedded_postgres.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::runtime {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using chartflow::testing::TempDir;
using chartflow::testing::wait_until;
using namespace std::chrono_literals;

int query_int(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn(conninfo);
  pqxx::work tx(conn);
  return tx.exec1(sql)[0].as<int>();
}

std::string read_small_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string read_first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

void execute(const std::string& conninfo, const std::string& sql) {
  pqxx::connection conn(conninfo);
  pqxx::work tx(conn);
  tx.exec0(sql);
  tx.commit();
}

// The query's answer on a new connection, or nullopt while the server does not answer.
std::optional<int> try_query_int(const std::string& conninfo, const std::string& sql) {
  try {
    return query_int(conninfo, sql);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

pid_t postmaster_pid(const fs::path& data_dir) {
  return static_cast<pid_t>(
      std::stol(read_first_line(data_dir / "pg" / "data" / "postmaster.pid")));
}

// What the tests wait for takes a few check intervals, not the production half second each.
SupervisorSettings quick_supervision() {
  SupervisorSettings s;
  s.check_interval = 50ms;
  s.first_backoff = 50ms;
  s.max_backoff = 200ms;
  s.failures_until_unhealthy = 3;
  return s;
}

TEST(EmbeddedPostgresPgTest, StartsLocksAndKeepsDataAcrossRestarts) {
  TempDir tmp("chartflow-embedded-pg");
  // Relative on purpose: `chartflow serve` defaults to ./chartflow-data.
  const fs::path previous_cwd = fs::current_path();
  fs::current_path(tmp.path());
  const fs::path data_dir = "chartflow-data";
  {
    EmbeddedPostgres pg(data_dir);
    const std::string conninfo = pg.start();
    fs::current_path(previous_cwd);
    EXPECT_THAT(conninfo, HasSubstr("dbname=chartflow"));
    EXPECT_THAT(conninfo, HasSubstr("user=chartflow"));
    EXPECT_EQ(pg.start(), conninfo) << "start() while running returns the same DSN";

    EXPECT_EQ(query_int(conninfo, "select 1"), 1);
    // Issue #14 item 13: the application's role owns its database but is no superuser.
    EXPECT_EQ(query_int(conninfo,
                        "select (not rolsuper and not rolcreaterole and not rolcreatedb)::int "
                        "from pg_roles where rolname = current_user"),
              1);
    EXPECT_EQ(query_int(conninfo,
                        "select (pg_get_userbyid(datdba) = current_user)::int from pg_database "
                        "where datname = current_database()"),
              1);
    EXPECT_EQ(query_int(conninfo,
                        "select (current_setting('fsync') = 'on'"
                        " and current_setting('synchronous_commit') = 'on'"
                        " and current_setting('listen_addresses') = '')::int"),
              1);
    execute(conninfo,
            "create table survives_restart (v int); insert into survives_restart "
            "values (42)");

    EmbeddedPostgres second(tmp.path() / data_dir);
    try {
      second.start();
      ADD_FAILURE() << "a second EmbeddedPostgres on the same data dir started";
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr("in use by another chartflow process"));
      EXPECT_THAT(e.what(), HasSubstr("(pid " + std::to_string(::getpid()) + ")"));
    }

    pg.stop();
    pg.stop();  // idempotent
    EXPECT_THROW(query_int(conninfo, "select 1"), pqxx::broken_connection);

    const std::string restarted = pg.start();
    EXPECT_EQ(query_int(restarted, "select v from survives_restart"), 42);
  }
  // The destructor stopped the server and released the lock: a new owner can start it.
  EmbeddedPostgres next(tmp.path() / data_dir);
  const std::string conninfo = next.start();
  EXPECT_EQ(query_int(conninfo, "select v from survives_restart"), 42);
  next.stop();

  struct stat st {};
  ASSERT_EQ(::stat((tmp.path() / data_dir / "pg" / "data").c_str(), &st), 0);
  if (::geteuid() == 0) {
    EXPECT_NE(st.st_uid, 0u) << "as root the cluster must belong to an unprivileged user";
  }
}

TEST(EmbeddedPostgresPgTest, LongDataDirPutsSocketUnderTmp) {
  TempDir tmp("chartflow-embedded-pg");
  fs::path data_dir = tmp.path();
  for (int i = 0; i < 4; ++i) data_dir /= std::string(30, 'd');
  fs::create_directories(data_dir);
  for (fs::path p = data_dir; p != tmp.path(); p = p.parent_path()) {
    fs::permissions(p, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }

  EmbeddedPostgres pg(data_dir);
  const std::string conninfo = pg.start();
  EXPECT_THAT(conninfo, HasSubstr("host=/tmp/chartflow-"));
  EXPECT_EQ(query_int(conninfo, "select 1"), 1);
  pg.stop();
}

TEST(EmbeddedPostgresPgTest, RestartsServerOrphanedByCrashedPredecessor) {
  TempDir tmp("chartflow-embedded-pg");
  const fs::path data_dir = tmp.path() / "data";
  // The predecessor: a child process that starts the server, writes a row and dies without
  // running any destructor, as a crash would. Its lock goes with it; the server stays up.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      EmbeddedPostgres pg(data_dir);
      execute(pg.start(), "create table kept (v int); insert into kept values (7)");
      ::_exit(0);  // inside the scope: no destructor, no stop()
    } catch (...) {
      ::_exit(2);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "predecessor failed to start";
  const auto orphan_pid = std::stol(read_first_line(data_dir / "pg" / "data" / "postmaster.pid"));
  ASSERT_EQ(::kill(static_cast<pid_t>(orphan_pid), 0), 0) << "the orphan should still run";

  EmbeddedPostgres pg(data_dir);
  const std::string conninfo = pg.start();
  EXPECT_EQ(query_int(conninfo, "select v from kept"), 7);
  const auto new_pid = std::stol(read_first_line(data_dir / "pg" / "data" / "postmaster.pid"));
  EXPECT_NE(new_pid, orphan_pid) << "the orphan is stopped and a fresh server started";
  pg.stop();
}

// Issue #15 item 3: after kill -9 of the postmaster chartflow stayed up, its database gone for
// good. The supervisor starts the cluster again and PostgreSQL's crash recovery keeps what was
// committed.
TEST(EmbeddedPostgresPgTest, SupervisorRestartsKilledPostmasterWithItsData) {
  TempDir tmp("chartflow-embedded-pg");
  const fs::path data_dir = tmp.path() / "data";
  EmbeddedPostgres pg(data_dir);
  const std::string conninfo = pg.start();
  pg.supervise(quick_supervision());
  execute(conninfo, "create table kept (v int); insert into kept values (11)");
  // Started as a hardened unit runs it (no writable executable memory, deploy/systemd).
  EXPECT_EQ(try_query_int(conninfo, "select (current_setting('jit') = 'off')::int"), 1);

  const pid_t killed = postmaster_pid(data_dir);
  ASSERT_EQ(::kill(killed, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return pg.restarts() >= 1; }, 60s))
      << "the killed postmaster was not restarted";
  ASSERT_TRUE(wait_until([&] { return try_query_int(conninfo, "select v from kept") == 11; }, 30s))
      << "the committed row did not survive the crash";
  EXPECT_EQ(pg.restarts(), 1);
  EXPECT_NE(postmaster_pid(data_dir), killed);
  EXPECT_EQ(pg.unhealthy_reason(), std::nullopt);

  // A deliberate stop is no crash: nothing starts the server again.
  pg.stop();
  std::this_thread::sleep_for(300ms);  // several check intervals
  EXPECT_FALSE(fs::exists(data_dir / "pg" / "data" / "postmaster.pid"));
  EXPECT_EQ(pg.restarts(), 1);
}

// As a container's init, chartflow is the parent the killed postmaster is handed to: nobody
// else reaps it, and PostgreSQL will not start while its lock files name a pid that is still a
// zombie. A subreaper stands in for init here, in a child so the test binary stays as it was.
TEST(EmbeddedPostgresPgTest, SupervisorReapsTheKilledPostmasterWhenItIsOurs) {
  TempDir tmp("chartflow-embedded-pg");
  const fs::path data_dir = tmp.path() / "data";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 3;
    try {
      ::prctl(PR_SET_CHILD_SUBREAPER, 1);
      EmbeddedPostgres pg(data_dir);
      const std::string conninfo = pg.start();
      pg.supervise(quick_supervision());
      ::kill(postmaster_pid(data_dir), SIGKILL);
      const bool back = wait_until([&] { return pg.restarts() == 1; }, 30s) &&
                        try_query_int(conninfo, "select 1") == 1;
      code = back ? 0 : 1;
      pg.stop();
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: not restarted within 30 s; 2: an exception";
}

// When the cluster cannot start again, /healthz must say so (so a service manager restarts the
// process) instead of answering 200 for ever; once it can, it is restarted and healthy again.
TEST(EmbeddedPostgresPgTest, SupervisorTurnsUnhealthyWhileRestartsFail) {
  TempDir tmp("chartflow-embedded-pg");
  const fs::path data_dir = tmp.path() / "data";
  EmbeddedPostgres pg(data_dir);
  const std::string conninfo = pg.start();
  pg.supervise(quick_supervision());
  EXPECT_EQ(pg.unhealthy_reason(), std::nullopt);

  // The running server never rereads its configuration; the next start refuses it.
  const fs::path conf = data_dir / "pg" / "data" / "postgresql.conf";
  const std::string good_conf = read_small_file(conf);
  std::ofstream(conf, std::ios::app) << "\nshared_buffers = 'not a size'\n";
  ASSERT_EQ(::kill(postmaster_pid(data_dir), SIGKILL), 0);

  ASSERT_TRUE(wait_until([&] { return pg.unhealthy_reason().has_value(); }, 30s))
      << "restarts keep failing but the supervisor still reports healthy";
  EXPECT_THAT(pg.unhealthy_reason().value_or(""),
              HasSubstr("embedded PostgreSQL failed to restart"));
  EXPECT_EQ(pg.restarts(), 0);

  std::ofstream(conf, std::ios::trunc) << good_conf;
  ASSERT_TRUE(wait_until([&] { return !pg.unhealthy_reason() && pg.restarts() == 1; }, 30s))
      << "a restart that can succeed again must bring the cluster back";
  EXPECT_EQ(try_query_int(conninfo, "select 1"), 1);
  pg.stop();
}

}  // namespace
}  // namespace chartflow::runtime
