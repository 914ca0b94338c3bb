// The Beast HTTP listener: accepts connections and runs each request through the Router on a
// pool of io threads (handlers may block on the database, so there are several).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/router.hpp"

namespace chartflow::http {

inline constexpr std::size_t kDefaultBodyLimit = 16 * 1024 * 1024;
inline constexpr int kDefaultIoThreads = 4;

struct ServerSettings {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  std::size_t body_limit = kDefaultBodyLimit;
  int threads = kDefaultIoThreads;
};

class Server {
 public:
  Server(ServerSettings settings, const Router& router);
  ~Server();
  // Binds (throws std::runtime_error naming the address on failure) and starts the io threads.
  void start();
  void stop();
  unsigned short port() const;  // the bound port (useful with port 0)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chartflow::http
