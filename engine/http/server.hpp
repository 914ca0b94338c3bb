// The Beast HTTP listener: accepts connections (plain, or TLS 1.2+ when given a certificate) and
// runs each request through the Router on a pool of io threads (handlers may block on the
// database, so there are several). Every request is held to InputLimits before a route sees it.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/request_intake.hpp"
#include "http/router.hpp"

namespace chartflow::http {

inline constexpr int kDefaultIoThreads = 4;
inline constexpr int kDefaultHandlerThreads = 16;
inline constexpr int kDefaultUploadQueue = 64;
// Below the usual 1024 file descriptor limit, leaving room for database connections and files.
inline constexpr int kDefaultMaxConnections = 768;
inline constexpr int kDefaultMaxConnectionsPerClient = 256;

// Large bodies read and handled at once: one per core, as parsing a chart is CPU work and each
// one in flight holds its body and its parse (about ten times the body) in memory.
inline int default_upload_slots() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// PEM files: the certificate chain and its private key.
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
};

struct ServerSettings {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  InputLimits limits;
  std::optional<TlsFiles> tls;  // set: every connection must speak TLS 1.2 or later
  int threads = kDefaultIoThreads;
  // Threads that run the route handlers (which may wait on the database), so the io threads
  // stay free to read requests and answer the ones that never wait (health checks).
  int handler_threads = kDefaultHandlerThreads;
  int upload_slots = default_upload_slots();  // see UploadSlots
  int upload_queue = kDefaultUploadQueue;     // uploads that may wait for a slot; then 503
  // Open connections in total and per client address (0: no cap); over a cap, closed at once.
  int max_connections = kDefaultMaxConnections;
  int max_connections_per_client = kDefaultMaxConnectionsPerClient;
};

class Server {
 public:
  Server(ServerSettings settings, const Router& router);
  ~Server();
  // Binds and loads the TLS files (throws std::runtime_error naming the address or file on
  // failure) and starts the io threads.
  void start();
  void stop();
  unsigned short port() const;  // the bound port (useful with port 0)
  struct UploadStats {
    int slots = 0;    // configured
    int in_use = 0;   // held by uploads being read or handled
    int waiting = 0;  // queued for a slot
  };
  UploadStats upload_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chartflow::http
