#include "handlers/common/http_post.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace chartflow::handlers {
namespace {

// A tiny one-request-per-connection HTTP server on 127.0.0.1 answering with a scripted status
// per request; records what it received.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<int> statuses) : statuses_(std::move(statuses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 8);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url(const std::string& path = "/claims") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    for (std::size_t i = 0; i < statuses_.size(); ++i) {
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      std::string request;
      char buffer[4096];
      while (true) {
        auto header_end = request.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          auto cl = request.find("Content-Length: ");
          std::size_t length = cl == std::string::npos ? 0 : std::stoul(request.substr(cl + 16));
          if (request.size() >= header_end + 4 + length) break;
        }
        ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      std::string body = "{\"ok\":true}";
      std::string response = "HTTP/1.1 " + std::to_string(statuses_[i]) +
                             " Whatever\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n" + body;
      ::send(client, response.data(), response.size(), MSG_NOSIGNAL);
      ::close(client);
    }
  }

  std::vector<int> statuses_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

TEST(HttpPostTest, PostsBodyAndHeadersAndReportsStatus) {
  ScriptedServer server({503, 201});
  HttpResult first = http_post(server.url(), "{\"a\":1}", {{"Idempotency-Key", "k-1"}});
  EXPECT_EQ(first.status, 503);
  EXPECT_FALSE(first.ok());
  EXPECT_TRUE(first.error.empty());
  HttpResult second = http_post(server.url(), "{\"a\":1}",
                                {{"Idempotency-Key", "k-1"}, {"Content-Type", "application/fhir+json"}});
  EXPECT_EQ(second.status, 201);
  EXPECT_TRUE(second.ok());
  EXPECT_EQ(second.body, "{\"ok\":true}");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[0].rfind("POST /claims HTTP/1.1\r\n", 0), 0U);
  EXPECT_NE(requests[0].find("Idempotency-Key: k-1\r\n"), std::string::npos);
  EXPECT_NE(requests[0].find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(requests[1].find("Content-Type: application/fhir+json\r\n"), std::string::npos);
  EXPECT_EQ(requests[1].find("application/json"), std::string::npos);
  EXPECT_EQ(requests[1].substr(requests[1].size() - 7), "{\"a\":1}");
}

TEST(HttpPostTest, ConnectionErrorsAreValuesNotExceptions) {
  int port = 0;
  {
    ScriptedServer server({});  // bound, then closed: nothing listens there afterwards
    port = std::stoi(server.url().substr(17, 5));
  }
  HttpResult refused = http_post("http://127.0.0.1:" + std::to_string(port) + "/", "{}", {},
                                 std::chrono::milliseconds(500));
  EXPECT_EQ(refused.status, 0);
  EXPECT_FALSE(refused.error.empty());
  EXPECT_FALSE(refused.ok());
  EXPECT_FALSE(http_post("https://example.org/", "{}", {}).error.empty());
  EXPECT_FALSE(http_post("http://host.invalid./", "{}", {}, std::chrono::milliseconds(500)).ok());
  EXPECT_EQ(http_post("http://127.0.0.1:1/", "{}", {{"X-Bad", "a\r\nb"}}).status, 0);
}

TEST(HttpPostTest, ParsesHttpUrls) {
  auto u = parse_http_url("http://insurer.test:8080/claims?x=1");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "insurer.test");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->target, "/claims?x=1");
  u = parse_http_url("HTTP://h");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->target, "/");
  u = parse_http_url("http://[::1]:9000/x");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "9000");
  for (const char* bad : {"", "http://", "https://h/", "ftp://h", "http://user@h/", "http://h:/",
                          "http://h:99999999/", "http://h:abc/", "http://h/a b", "h:80/x"}) {
    EXPECT_FALSE(parse_http_url(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace chartflow::handlers
