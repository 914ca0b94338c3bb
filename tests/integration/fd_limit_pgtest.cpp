// A real `chartflow serve` under a small file descriptor limit (prlimit), flooded with idle
// connections: the connection cap is fitted under the limit (also when it is 0, "no cap"), so
// requests on open connections still reach the database and the flood costs no CPU (issue #14,
// item 4: 400 idle connections once held the accept loop on a full core).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <filesystem>
#include <fstream>

#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kFileLimit = 128;
constexpr int kFlood = 300;  // more idle connections than the limit allows

// CPU seconds (user + system) the process has used.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stol(field);
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

class FdLimitTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" /
           ("fd-limit-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    admin_ = create_token(dsn(), "admin");
  }

  std::unique_ptr<ChildProcess> serve(const std::vector<std::string>& extra) {
    std::vector<std::string> argv{
        "/usr/bin/prlimit",
        "--nofile=" + std::to_string(kFileLimit) + ":" + std::to_string(kFileLimit),
        CHARTFLOW_BINARY,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        dsn(),
        "--workers",
        "1",
        "--workflows",
        (fs::path(CHARTFLOW_SOURCE_DIR) / "workflows").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = std::make_unique<ChildProcess>(argv, dir_ / "serve.log");
    port_ = wait_listening(*p, 30s);
    EXPECT_TRUE(port_ != 0 && wait_healthy(*p, port_, 30s)) << p->log();
    return p;
  }

  // Opens up to `n` connections and keeps them; the server may close those over its cap.
  std::vector<std::unique_ptr<net::ip::tcp::socket>> flood(int n) {
    std::vector<std::unique_ptr<net::ip::tcp::socket>> held;
    for (int i = 0; i < n; ++i) {
      auto s = std::make_unique<net::ip::tcp::socket>(ioc_);
      boost::system::error_code ec;
      s->connect({net::ip::make_address("127.0.0.1"), port_}, ec);
      if (ec) break;
      held.push_back(std::move(s));
    }
    return held;
  }

  std::string authenticated_get(net::ip::tcp::socket& s) {
    const std::string req = "GET /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                            admin_ + "\r\nConnection: close\r\n\r\n";
    net::write(s, net::buffer(req));
    std::string reply;
    boost::system::error_code ec;
    net::read(s, net::dynamic_buffer(reply), ec);  // until the server closes
    return reply.substr(0, reply.find("\r\n"));
  }

  net::io_context ioc_;
  fs::path dir_;
  std::string admin_;
  unsigned short port_ = 0;
};

TEST_F(FdLimitTest, AConnectionFloodLeavesDescriptorsForTheDatabase) {
  auto server = serve({});
  ASSERT_TRUE(server->running());
  EXPECT_THAT(server->log(), HasSubstr("max_connections_lowered"));
  auto held = flood(kFlood);
  ASSERT_GE(held.size(), 8u);
  // The first connection was admitted; its request needs a database connection, which the
  // reserve leaves room for.
  EXPECT_EQ(authenticated_get(*held.front()), "HTTP/1.1 200 OK") << server->log();
  EXPECT_TRUE(server->running()) << server->log();
  EXPECT_THAT(server->log(), Not(HasSubstr("http_accept_failed")))
      << "the cap should have kept accept away from the descriptor limit";
  held.clear();
  EXPECT_TRUE(wait_healthy(*server, port_, 10s)) << server->log();
}

// "No cap" (0) is held to the descriptor limit too. Without that, the flood ran the server out of
// descriptors: accept failed with EMFILE (it then rests, see server.cpp) and so did every new
// database connection and handler pipe. The server neither spins nor loses its database.
TEST_F(FdLimitTest, NoCapStillKeepsTheReserveAndTheFloodCostsNoCpu) {
  auto server = serve({"--max-connections", "0", "--max-connections-per-client", "100000"});
  ASSERT_TRUE(server->running());
  EXPECT_THAT(server->log(), HasSubstr("max_connections_lowered"));
  auto held = flood(kFlood);
  ASSERT_GE(held.size(), 8u);
  // A spinning accept loop burns a core (a second of CPU per second of the window); an idle
  // server with connections held open costs next to nothing.
  const double before = cpu_seconds(server->pid());
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(2s);  // the measurement window itself, not a wait for a condition
  const double window =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double spent = cpu_seconds(server->pid()) - before;
  EXPECT_LT(spent, 0.25 * window) << spent << " CPU-s in " << window << " s";
  EXPECT_EQ(authenticated_get(*held.front()), "HTTP/1.1 200 OK") << server->log();
  EXPECT_THAT(server->log(), Not(HasSubstr("http_accept_failed")));
  held.clear();
  EXPECT_TRUE(wait_healthy(*server, port_, 10s)) << server->log();
}

}  // namespace
}  // namespace chartflow::testing
