// Every input limit of the HTTP server, each sent just over (and just under) over a raw socket,
// while a second client is served at the same time: the limits protect the server, they must not
// take it down for everyone else.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <future>
#include <sstream>
#include <thread>

#include "http/server.hpp"

namespace chartflow::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kHeaderLimit = 1024;
constexpr std::size_t kBodyLimit = 1000;
constexpr std::size_t kUploadLimit = 4000;
constexpr int kDepthLimit = 8;
constexpr std::size_t kEntryLimit = 5;
constexpr auto kTimeout = std::chrono::milliseconds(300);

// A client on a raw socket, so a test can send exactly what a hostile client would.
class RawClient {
 public:
  explicit RawClient(unsigned short port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  bool send(const std::string& bytes) {
    boost::system::error_code ec;
    net::write(socket_, net::buffer(bytes), ec);
    return !ec;
  }
  // Everything the server sends until it closes the connection (or `timeout` passes).
  std::string read_all(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    socket_.non_blocking(true);
    std::string out;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      char buf[4096];
      boost::system::error_code ec;
      const auto n = socket_.read_some(net::buffer(buf), ec);
      if (ec == net::error::would_block) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      out.append(buf, n);
      if (ec) break;
      // One response is all these tests wait for: stop once its body is complete.
      const auto end = out.find("\r\n\r\n");
      const auto cl = out.find("Content-Length: ");
      if (end != std::string::npos && cl != std::string::npos && cl < end) {
        const auto len = std::stoul(out.substr(cl + 16));
        if (out.size() >= end + 4 + len) break;
      }
    }
    return out;
  }
  // True once the server has closed the connection (EOF or reset) within `timeout`.
  bool closed_by_server(std::chrono::milliseconds timeout) {
    socket_.non_blocking(true);
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      char buf[256];
      boost::system::error_code ec;
      socket_.read_some(net::buffer(buf), ec);
      if (ec && ec != net::error::would_block) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string nested(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

std::string bundle(std::size_t entries) {
  std::string out = R"({"resourceType": "Bundle", "type": "collection", "entry": [)";
  for (std::size_t i = 0; i < entries; ++i)
    out += std::string(i ? "," : "") + R"({"resource": {"resourceType": "Basic", "id": "b]"}})";
  return out + "]}";
}

class ServerLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.add("GET", "/healthz", "healthz", Access::open(), [](Request&) {
      return Response::json(200, Json{{"ok", true}});
    });
    router_.add("POST", "/v1/echo", "echo", Access::open(), [](Request& req) {
      return Response::json(200, Json{{"bytes", parse_json_body(req).dump().size()}});
    });
    router_.add("PUT", "/v1/charts/{id}", "upload", Access::open(), [](Request& req) {
      return Response::json(202, Json{{"bytes", req.body.size()}});
    });
    ServerSettings s;
    s.port = 0;
    s.threads = 2;
    s.limits.header_bytes = kHeaderLimit;
    s.limits.body_bytes = kBodyLimit;
    s.limits.upload_body_bytes = kUploadLimit;
    s.limits.json_depth = kDepthLimit;
    s.limits.bundle_entries = kEntryLimit;
    s.limits.header_timeout = kTimeout;
    s.limits.body_timeout = kTimeout;
    server_ = std::make_unique<Server>(s, router_);
    server_->start();
  }
  void TearDown() override { server_->stop(); }

  // Sends `request` on one connection and, before reading its answer, has a second client fetch
  // /healthz: the returned response is the first connection's.
  std::string exchange_while_serving_others(const std::string& request) {
    RawClient bad(server_->port());
    bad.send(request);
    expect_others_served();
    return bad.read_all();
  }
  void expect_others_served() {
    RawClient other(server_->port());
    other.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_of(other.read_all()), 200) << "a second client was not served";
  }
  std::string post(const std::string& target, const std::string& body,
                   const std::string& type = "application/json",
                   const std::string& method = "POST") {
    return exchange_while_serving_others(
        method + " " + target +
        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: " +
        type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }

  Router router_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerLimitsTest, HeadersOverTheLimitGet431) {
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  const std::size_t fits = kHeaderLimit - head.size() - end.size();
  EXPECT_EQ(status_of(exchange_while_serving_others(head + std::string(fits, 'a') + end)), 200);
  const auto over = exchange_while_serving_others(head + std::string(fits + 1, 'a') + end);
  EXPECT_EQ(status_of(over), 431) << over;
  EXPECT_THAT(over, HasSubstr("request headers exceed the limit of 1024 bytes"));
}

TEST_F(ServerLimitsTest, BodiesOverTheLimitGet413) {
  // The JSON is a string literal padded to the exact size.
  auto json_of_size = [](std::size_t n) { return "\"" + std::string(n - 2, 'x') + "\""; };
  EXPECT_EQ(status_of(post("/v1/echo", json_of_size(kBodyLimit))), 200);
  const auto over = post("/v1/echo", json_of_size(kBodyLimit + 1));
  EXPECT_EQ(status_of(over), 413) << over;
  EXPECT_THAT(over, HasSubstr("request body exceeds the limit of 1000 bytes"));

  // Chunked: no Content-Length to refuse up front, so the limit applies while reading.
  const std::string chunk(kBodyLimit + 1, 'x');
  std::ostringstream hex;
  hex << std::hex << chunk.size();
  const auto chunked = exchange_while_serving_others(
      "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Content-Type: text/plain\r\n\r\n" +
      hex.str() + "\r\n" + chunk + "\r\n0\r\n\r\n");
  EXPECT_EQ(status_of(chunked), 413) << chunked;
  EXPECT_THAT(chunked, HasSubstr("limit of 1000 bytes"));
}

TEST_F(ServerLimitsTest, UploadsHaveTheirOwnLimit) {
  // Over the general limit but within the upload limit: accepted on the upload path only.
  const std::string within(kUploadLimit, 'x');
  const auto ok = post("/v1/charts/c1", within, "text/plain", "PUT");
  EXPECT_EQ(status_of(ok), 202) << ok;
  const auto over = post("/v1/charts/c1", within + "x", "text/plain", "PUT");
  EXPECT_EQ(status_of(over), 413) << over;
  EXPECT_THAT(over, HasSubstr("request body exceeds the limit of 4000 bytes"));
}

TEST_F(ServerLimitsTest, JsonNestedTooDeepGets400) {
  EXPECT_EQ(status_of(post("/v1/echo", nested(kDepthLimit))), 200);
  const auto over = post("/v1/echo", nested(kDepthLimit + 1));
  EXPECT_EQ(status_of(over), 400) << over;
  EXPECT_THAT(over, HasSubstr("JSON nested deeper than 8 levels"));
  // Brackets inside strings are text, not nesting.
  EXPECT_EQ(status_of(post("/v1/echo", "[\"" + std::string(50, '[') + "\"]")), 200);
  // A body without a content type is read as JSON by the routes, so it is checked too.
  const auto untyped = exchange_while_serving_others(
      "POST /v1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 18\r\n\r\n" +
      nested(kDepthLimit + 1));
  EXPECT_EQ(status_of(untyped), 400) << untyped;
}

// Well-formed JSON that nlohmann cannot hold (found by fuzzing): a 400, not a 500.
TEST_F(ServerLimitsTest, NumbersOutOfRangeGet400) {
  const auto r = post("/v1/echo", R"({"n": 94e61515})");
  EXPECT_EQ(status_of(r), 400) << r;
  EXPECT_THAT(r, HasSubstr("a number is out of range"));
}

TEST_F(ServerLimitsTest, BundlesWithTooManyEntriesGet413) {
  EXPECT_EQ(status_of(post("/v1/charts/c1", bundle(kEntryLimit), "application/fhir+json", "PUT")),
            202);
  const auto over = post("/v1/charts/c1", bundle(kEntryLimit + 1), "application/fhir+json", "PUT");
  EXPECT_EQ(status_of(over), 413) << over;
  EXPECT_THAT(over, HasSubstr("the Bundle has more than 5 entries"));
  // An escaped key that decodes to "entry" is counted as well.
  std::string escaped = bundle(kEntryLimit + 1);
  escaped.replace(escaped.find("\"entry\""), 7, R"("entr\u0079")");
  EXPECT_EQ(status_of(post("/v1/charts/c1", escaped, "application/fhir+json", "PUT")), 413);
}

TEST_F(ServerLimitsTest, ControlCharactersInPathOrQueryGet400) {
  for (const char* target : {"/v1/charts/a%0d%0aSet-Cookie:x", "/v1/charts/a%00b",
                             "/healthz?q=a%0ab", "/healthz?%7f=1"}) {
    const auto r = exchange_while_serving_others(
        std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_of(r), 400) << target << " -> " << r;
    EXPECT_THAT(r, HasSubstr("control characters")) << target;
  }
}

TEST_F(ServerLimitsTest, ClientTricklingHeadersIsCutOff) {
  RawClient slow(server_->port());
  const auto start = Clock::now();
  const std::string request =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a') + "\r\n\r\n";
  bool closed = false;
  for (char c : request) {
    // Each byte well within any per-read timeout; only a deadline for the whole header stops it.
    if (!slow.send(std::string(1, c)) || slow.closed_by_server(std::chrono::milliseconds(20))) {
      closed = true;
      break;
    }
    if (Clock::now() - start > std::chrono::milliseconds(100)) expect_others_served();
    if (Clock::now() - start > std::chrono::seconds(3)) break;
  }
  EXPECT_TRUE(closed) << "a client trickling its headers was never cut off";
  EXPECT_LT(Clock::now() - start, kTimeout + std::chrono::seconds(1));
  expect_others_served();
}

TEST_F(ServerLimitsTest, ClientTricklingItsBodyIsCutOff) {
  RawClient slow(server_->port());
  ASSERT_TRUE(
      slow.send("POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 500\r\n\r\n\""));
  const auto start = Clock::now();
  bool closed = false;
  while (Clock::now() - start < std::chrono::seconds(3)) {
    if (!slow.send("x") || slow.closed_by_server(std::chrono::milliseconds(20))) {
      closed = true;
      break;
    }
    expect_others_served();
  }
  EXPECT_TRUE(closed) << "a client trickling its body was never cut off";
  EXPECT_LT(Clock::now() - start, kTimeout + std::chrono::seconds(1));
}

}  // namespace
}  // namespace chartflow::http
