// `chartflow serve` transport and secrets settings, on the real binary: a non-loopback listen
// without TLS is refused at startup unless --insecure-listen says otherwise, the database URL
// can come from a file (flag or environment), and a failing database URL never shows its
// password.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "tests/support/child_process.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

class TransportTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    dir_ = fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" /
           ("transport-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    ::unsetenv("CHARTFLOW_DATABASE_URL_FILE");
    PgTest::TearDown();
  }
  fs::path write_file(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  std::unique_ptr<ChildProcess> chartflow(std::vector<std::string> args) {
    args.insert(args.begin(), CHARTFLOW_BINARY);
    return std::make_unique<ChildProcess>(args, dir_ / "stdout.log", dir_ / "stderr.log");
  }
  std::vector<std::string> serve(const std::string& listen) {
    return {"serve",
            "--listen",
            listen,
            "--workers",
            "1",
            "--workflows",
            (fs::path(CHARTFLOW_SOURCE_DIR) / "workflows").string()};
  }

  fs::path dir_;
};

TEST_F(TransportTest, NonLoopbackListenWithoutTlsIsAStartupError) {
  const auto url = write_file("db-url", dsn() + "\n");
  auto p = chartflow({"serve", "--listen", "0.0.0.0:0", "--database-url-file", url.string()});
  ASSERT_EQ(p->wait_exit(20s), 1) << p->log();
  EXPECT_THAT(p->err_log(), HasSubstr("refusing to listen on 0.0.0.0"));
  EXPECT_THAT(p->err_log(), HasSubstr("--insecure-listen"));
  // Refused before touching the database: no workflow was published.
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_version"), "0");
}

TEST_F(TransportTest, LoopbackServesFromADatabaseUrlFileAndSaysItHasNoTls) {
  const auto url = write_file("db-url", dsn() + "\n");
  auto args = serve("127.0.0.1:0");
  args.insert(args.end(), {"--database-url-file", url.string()});
  auto p = chartflow(args);
  const auto port = wait_listening(*p, 30s);
  ASSERT_TRUE(port != 0 && wait_healthy(*p, port, 30s)) << p->log();
  EXPECT_TRUE(
      wait_until([&] { return p->log().find("no TLS: loopback only") != std::string::npos; }, 5s))
      << p->log();
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait_exit(30s), 0) << p->log();
  EXPECT_NE(scalar("SELECT count(*) FROM workflow_version"), "0");
}

TEST_F(TransportTest, InsecureListenAllowsANetworkAddressWithAWarning) {
  auto args = serve("0.0.0.0:0");
  args.insert(args.end(), {"--insecure-listen", "--database-url", dsn()});
  auto p = chartflow(args);
  const auto port = wait_listening(*p, 30s);
  ASSERT_TRUE(port != 0 && wait_healthy(*p, port, 30s)) << p->log();
  EXPECT_TRUE(wait_until(
      [&] { return p->log().find("WITHOUT TLS on a network address") != std::string::npos; }, 5s))
      << p->log();
}

TEST_F(TransportTest, DatabaseUrlFileFromTheEnvironment) {
  const auto url = write_file("db-url", dsn());
  ::setenv("CHARTFLOW_DATABASE_URL_FILE", url.c_str(), 1);
  auto p = chartflow({"migrate"});
  ASSERT_EQ(p->wait_exit(30s), 0) << p->log();
  EXPECT_THAT(p->log(), HasSubstr("applied 0 migration(s)"));
}

TEST_F(TransportTest, ADatabaseUrlThatFailsNeverShowsItsPassword) {
  const std::string password = "Sup3rS3cretPw";
  // libpq quotes this malformed URI whole in its error.
  const auto url = write_file("db-url", "postgresql://chartflow:" + password + "@[::1/chartflow");
  auto p = chartflow({"serve", "--listen", "127.0.0.1:0", "--database-url-file", url.string()});
  ASSERT_EQ(p->wait_exit(20s), 1) << p->log();
  EXPECT_THAT(p->log(), Not(HasSubstr(password)));
  EXPECT_THAT(p->err_log(), HasSubstr("[redacted]"));

  auto missing = chartflow({"migrate", "--database-url-file", (dir_ / "nope").string()});
  ASSERT_EQ(missing->wait_exit(20s), 1) << missing->log();
  EXPECT_THAT(missing->err_log(), HasSubstr("cannot read database URL file"));
}

}  // namespace
}  // namespace chartflow::testing
