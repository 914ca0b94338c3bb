// Test support: a TCP proxy in front of the test PostgreSQL that injects the network faults of a
// bad day. It relays bytes until told to:
//  - freeze(): stop relaying and accepting, keeping every socket open, as a SIGSTOPped server
//    looks from a client on the same machine (the kernel still acknowledges, nothing answers);
//  - cut(): close every relayed connection once (a restarted server, a failover);
//  - refuse(): close everything and refuse new connections (a server that is down);
//  - heal(): relay again.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace chartflow::testing {

class FaultProxy {
 public:
  FaultProxy(std::string target_host, int target_port)
      : host_(std::move(target_host)), target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 64) != 0)
      throw std::runtime_error("fault proxy: cannot listen");
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FaultProxy() {
    stop_ = true;
    acceptor_.join();
    std::vector<std::thread> pumps;
    {
      std::lock_guard lock(mu_);
      pumps.swap(pumps_);
    }
    for (auto& t : pumps) t.join();
    ::close(listen_fd_);
  }
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }
  void freeze() { frozen_ = true; }
  void heal() {
    frozen_ = false;
    refusing_ = false;
  }
  void cut() { ++generation_; }
  void refuse() {
    refusing_ = true;
    ++generation_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      // Frozen: connections wait in the kernel's backlog, unanswered, as with a stopped server.
      if (frozen_ || ::poll(&p, 1, 50) <= 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      const int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      if (refusing_) {
        ::close(client);
        continue;
      }
      const int server = connect_target();
      if (server < 0) {
        ::close(client);
        continue;
      }
      std::lock_guard lock(mu_);
      pumps_.emplace_back(
          [this, client, server, gen = generation_.load()] { relay(client, server, gen); });
    }
  }

  int connect_target() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(target_port_));
    ::inet_pton(AF_INET, host_.c_str(), &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // Both directions on one thread; ends when either side closes, or at cut()/refuse().
  void relay(int client, int server, int generation) {
    char buf[16384];
    while (!stop_ && generation_ == generation) {
      if (frozen_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0 || !write_all(i == 0 ? server : client, buf, static_cast<std::size_t>(n)))
          closed = true;
      }
      if (closed) break;
    }
    ::close(client);
    ::close(server);
  }

  static bool write_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd, data, size);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }

  std::string host_;
  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> frozen_{false};
  std::atomic<bool> refusing_{false};
  std::atomic<int> generation_{0};
  std::mutex mu_;
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

}  // namespace chartflow::testing
