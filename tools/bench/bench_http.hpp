// HTTP plumbing for the benchmarks that drive a real chartflow server: a keep-alive client (one
// per client thread) and a sink that answers every request 200 (the insurer endpoint), plus the
// `chartflow serve` child process itself. None of these is thread-safe except Sink, which runs
// its own thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace chartflow::bench {

struct HttpReply {
  int status = 0;
  std::string body;
};

// One persistent HTTP/1.1 connection; reconnects once when the server closed it.
class KeepAliveClient {
 public:
  // A non-empty `bearer` goes out as the Authorization of every request.
  KeepAliveClient(std::string host, unsigned short port, std::string bearer = "");
  ~KeepAliveClient();
  HttpReply send(const std::string& method, const std::string& target, const std::string& body = "",
                 const std::string& content_type = "application/json");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Accepts connections on 127.0.0.1 and answers each request 200 with "{}".
class Sink {
 public:
  Sink();
  ~Sink();
  unsigned short port() const { return port_; }
  long requests() const { return requests_.load(); }

 private:
  void loop();
  int listen_fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<long> requests_{0};
  std::thread thread_;
};

// A free TCP port on 127.0.0.1 (bound, then released, so another process may take it).
unsigned short free_port();

// `chartflow serve` (the `chartflow` built beside this binary, or `binary`: another build, to
// compare code before and after a change in one session) as a child process, output in `log`.
// SIGTERM and reap at destruction.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                const std::filesystem::path& log, const std::filesystem::path& binary = {});
  ~ServerProcess();
  pid_t pid() const { return pid_; }
  bool running();

 private:
  pid_t pid_ = -1;
};

// Polls GET /readyz until it answers 200 (throws after 60 s or when the server exits).
void wait_ready(unsigned short port, ServerProcess& server);

// Resident set size now and its peak (VmRSS, VmHWM) of a process, in bytes; 0 when unreadable.
struct Rss {
  long current = 0, peak = 0;
};
Rss read_rss(pid_t pid);
// CPU seconds (user + system) process `pid` has used so far, with `with_children` also those of
// its children: the live ones and the ones it has reaped. PostgreSQL's postmaster with its
// children is the whole cluster's CPU.
double cpu_seconds(pid_t pid, bool with_children = false);
// Resets the process's VmHWM to its current RSS (Linux clear_refs "5").
void reset_peak_rss(pid_t pid);

}  // namespace chartflow::bench
