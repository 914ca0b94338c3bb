// A deadline on every call to the database. A frozen server (SIGSTOPped, or a host whose kernel
// still acknowledges packets) never answers, and libpq waits in poll() with no timeout: one such
// call held an HTTP thread, the dispatcher or a worker until the node woke, minutes later.
// Server-side timeouts cannot help (the server is the frozen party) and TCP keepalives do not
// fire while the peer's kernel answers. So a watchdog thread shuts the socket of a call that
// outlived its deadline down: the call fails at once as a lost connection, and the pool drops it.
#pragma once

#include <chrono>
#include <cstdint>

namespace chartflow::store {

class CallWatchdog {
 public:
  CallWatchdog() = delete;
  using Deadline = std::chrono::steady_clock::time_point;
  // Registers a call in progress on socket `fd` until disarm(token).
  static std::uint64_t arm(int fd, Deadline deadline);
  // True when the watchdog cut the call off.
  static bool disarm(std::uint64_t token);
  // Calls cut off since start, for the metrics.
  static std::uint64_t cut_off();

 private:
  struct State;
  static State& state();
};

// Arms the watchdog for the scope of one call; a negative fd (no connection) arms nothing.
class CallDeadline {
 public:
  CallDeadline(int fd, std::chrono::milliseconds timeout);
  ~CallDeadline();
  CallDeadline(const CallDeadline&) = delete;
  CallDeadline& operator=(const CallDeadline&) = delete;

 private:
  std::uint64_t token_ = 0;
};

}  // namespace chartflow::store
