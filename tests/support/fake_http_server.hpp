// Test-only: a small HTTP/1.1 server on 127.0.0.1 (ephemeral port) that answers each request
// with the status (and, if it likes, the JSON body) chosen by a callback and records every
// request it received. One request per
// connection, served on one background thread until destruction. Header-only; tests only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace chartflow::testing {

struct ReceivedRequest {
  std::string head;  // request line and headers
  std::string body;
  // The value of header `name` (case-sensitive match on the name as sent), or "".
  std::string header(const std::string& name) const {
    auto pos = head.find("\r\n" + name + ": ");
    if (pos == std::string::npos) return {};
    pos += name.size() + 4;
    return head.substr(pos, head.find("\r\n", pos) - pos);
  }
};

struct FakeResponse {
  int status = 200;
  std::string body = "{}";
};

class FakeHttpServer {
 public:
  // `respond` gets the request and its 0-based index and returns the status code to answer.
  explicit FakeHttpServer(std::function<int(const ReceivedRequest&, int)> respond)
      : FakeHttpServer(std::function<FakeResponse(const ReceivedRequest&, int)>(
            [respond = std::move(respond)](const ReceivedRequest& r, int i) {
              return FakeResponse{respond(r, i), "{}"};
            })) {}
  // `respond` returns the status and the body.
  explicit FakeHttpServer(std::function<FakeResponse(const ReceivedRequest&, int)> respond)
      : respond_(std::move(respond)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 64);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeHttpServer() {
    stopping_ = true;
    thread_.join();
    ::close(fd_);
  }
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) continue;
      handle(client);
      ::close(client);
    }
  }

  void handle(int client) {
    std::string raw;
    char buffer[8192];
    std::size_t header_end = std::string::npos;
    std::size_t length = 0;
    while (true) {
      if (header_end == std::string::npos) {
        header_end = raw.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          auto cl = raw.find("Content-Length: ");
          if (cl != std::string::npos && cl < header_end) length = std::stoul(raw.substr(cl + 16));
        }
      }
      if (header_end != std::string::npos && raw.size() >= header_end + 4 + length) break;
      pollfd p{client, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return;
      ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
      if (n <= 0) return;
      raw.append(buffer, static_cast<std::size_t>(n));
    }
    ReceivedRequest request{raw.substr(0, header_end + 2), raw.substr(header_end + 4, length)};
    int index = 0;
    {
      std::lock_guard lock(mutex_);
      index = static_cast<int>(requests_.size());
      requests_.push_back(request);
    }
    const FakeResponse answer = respond_(request, index);
    const std::string& body = answer.body;
    const std::string response = "HTTP/1.1 " + std::to_string(answer.status) +
                                 " Status\r\nContent-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                                 body;
    ::send(client, response.data(), response.size(), MSG_NOSIGNAL);
  }

  std::function<FakeResponse(const ReceivedRequest&, int)> respond_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<ReceivedRequest> requests_;
};

}  // namespace chartflow::testing
