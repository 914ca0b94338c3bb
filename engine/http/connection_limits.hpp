// Caps on open connections, in total and per client address, so a few clients cannot hold every
// socket (and file descriptor) of the server. A connection over a cap is closed at once. Thread-
// safe. Behind a proxy every client shares the proxy's address: raise the per-client cap there.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace chartflow::http {

class ConnectionLimits {
 public:
  ConnectionLimits(int max_total, int max_per_client);

  // A ticket the connection holds while it is open, or nullptr when a cap is reached.
  std::shared_ptr<void> admit(const std::string& address);
  int open() const;

 private:
  void release(const std::string& address);

  mutable std::mutex mutex_;
  int max_total_;
  int max_per_client_;
  int total_ = 0;
  std::unordered_map<std::string, int> per_client_;
};

}  // namespace chartflow::http
