// Keeps the embedded PostgreSQL running: a kill -9, an OOM kill or a crash of the postmaster
// would otherwise leave `chartflow serve` up and useless until someone restarted it by hand.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace chartflow::runtime {

struct SupervisorSettings {
  std::chrono::milliseconds check_interval{500};
  // Between failed restarts: doubles from the first to the cap.
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds max_backoff{10'000};
  // Unhealthy once this many restarts in a row failed, or once any failed and the server has
  // been down this long: then only a restart of the whole process (its service manager) helps.
  // A restart still under way (crash recovery can take minutes) counts as neither.
  int failures_until_unhealthy = 5;
  std::chrono::milliseconds downtime_until_unhealthy{60'000};
  // After each successful restart, on the supervisor's thread (a metric, say); must not throw.
  std::function<void()> on_restart;
};

// A thread that asks `alive` every check interval and, once it says no, calls `restart` (which
// throws with a loggable message when it fails) until it succeeds, with a growing backoff.
// Thread-safe; the callbacks run on the supervisor's thread only.
class PostgresSupervisor {
 public:
  PostgresSupervisor(std::function<bool()> alive, std::function<void()> restart);
  ~PostgresSupervisor();  // stop()

  PostgresSupervisor(const PostgresSupervisor&) = delete;
  PostgresSupervisor& operator=(const PostgresSupervisor&) = delete;

  void start(SupervisorSettings settings);  // a no-op while running
  // Joins the thread: a restart under way finishes first. Afterwards nothing is restarted, so
  // a deliberate stop of the server is not taken for a crash.
  void stop();

  // Why the process cannot recover by itself (see SupervisorSettings), or nullopt. Never waits
  // on the server: cheap enough for every health check.
  std::optional<std::string> unhealthy_reason() const;
  int restarts() const;

 private:
  using Clock = std::chrono::steady_clock;

  void run();
  void recover();
  bool wait(std::chrono::milliseconds duration);  // false once stop() was called
  std::optional<std::string> unhealthy_reason_locked(Clock::time_point now) const;

  const std::function<bool()> alive_;
  const std::function<void()> restart_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  SupervisorSettings settings_;
  bool stopping_ = false;
  std::optional<Clock::time_point> down_since_;
  int failures_ = 0;  // failed restarts since the server died
  int restarts_ = 0;
  std::thread thread_;
};

}  // namespace chartflow::runtime
