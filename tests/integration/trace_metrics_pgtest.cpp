// Traces (issue #18 part 4) as an operator sees them fail: a real `chartflow serve` with
// --otlp-endpoint at a collector that accepts connections and never answers drops the spans it
// cannot send, and says how many on GET /metrics (chartflow_trace_spans_dropped_total), while
// runs go on.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Listens (the kernel completes connections) and never reads or answers.
class SilentCollector {
 public:
  SilentCollector() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 64);
  }
  ~SilentCollector() { ::close(fd_); }
  SilentCollector(const SilentCollector&) = delete;
  SilentCollector& operator=(const SilentCollector&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class TraceProcessTest : public PgTest {};

// The counter's value in a scrape; -1 when absent.
double dropped_in(const std::string& scrape) {
  std::smatch m;
  if (!std::regex_search(scrape, m,
                         std::regex(R"(\nchartflow_trace_spans_dropped_total ([0-9.e+]+))")))
    return -1;
  return std::stod(m[1]);
}

TEST_F(TraceProcessTest, SpansACollectorNeverTakesAreCountedAsDroppedOnMetrics) {
  SilentCollector collector;
  const auto log =
      fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" / (schema() + "-trace-serve.log");
  ChildProcess serve(
      {CHARTFLOW_BINARY, "serve", "--listen", "127.0.0.1:0", "--database-url", dsn(), "--workflows",
       std::string(CHARTFLOW_SOURCE_DIR) + "/workflows", "--otlp-endpoint", collector.url()},
      log);
  const auto port = wait_listening(serve, 30s);
  ASSERT_NE(port, 0) << serve.log();
  const std::string token = create_token(dsn(), "operator");
  auto scrape = [&] {
    auto r = request("GET", "127.0.0.1", port, "/metrics", "", with_bearer(token));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  };
  EXPECT_EQ(dropped_in(scrape()), 0.0) << "declared at 0 before any span";

  auto r = request("POST", "127.0.0.1", port, "/v1/events/demo.diamond", R"({"skip_e": false})",
                   with_bearer(token));
  ASSERT_EQ(r.status, 202) << r.body;
  const auto run = r.json()["runs"][0].get<std::int64_t>();
  // The run ends without waiting on the collector.
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run)) ==
           "succeeded";
  })) << serve.log();
  // Its spans wait out one request timeout (2 s), then count as dropped; bounded by the default
  // flush interval (1 s) + timeout (2 s) and a margin for a loaded machine.
  double dropped = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        dropped = dropped_in(scrape());
        return dropped > 0;
      },
      20s))
      << serve.log();
  // At least the run's root span and one per step of the diamond.
  EXPECT_GE(dropped, 2.0);
  EXPECT_NE(serve.log().find("trace_export_failed"), std::string::npos) << serve.log();
}

}  // namespace
}  // namespace chartflow::testing
