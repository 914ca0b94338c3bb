#include "store/call_watchdog.hpp"

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace chartflow::store {

namespace {
constexpr auto kTick = std::chrono::milliseconds(200);
}  // namespace

struct CallWatchdog::State {
  struct Call {
    int fd;
    Deadline deadline;
    bool fired = false;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::uint64_t, Call> calls;
  std::uint64_t next = 1;
  std::atomic<std::uint64_t> cut{0};
  bool started = false;

  // Runs for the life of the process (a detached thread: the state is never destroyed).
  void loop() {
    std::unique_lock lock(mu);
    for (;;) {
      // A tick rather than a wake-up per call: arming stays a map insert, and a deadline is
      // kept to within a tick.
      auto wake = std::chrono::steady_clock::now() + kTick;
      const auto now = std::chrono::steady_clock::now();
      for (auto& [token, call] : calls) {
        if (call.fired) continue;
        if (call.deadline <= now) {
          // The calling thread is inside the call, so the socket is still the call's: it is
          // closed only by that thread, after disarm, which waits for this lock.
          ::shutdown(call.fd, SHUT_RDWR);
          call.fired = true;
          cut.fetch_add(1, std::memory_order_relaxed);
        } else if (call.deadline < wake) {
          wake = call.deadline;
        }
      }
      cv.wait_until(lock, wake);  // nothing notifies: see kTick
    }
  }
};

CallWatchdog::State& CallWatchdog::state() {
  static auto* s = new State();  // never destroyed: the watchdog thread outlives main()
  return *s;
}

std::uint64_t CallWatchdog::arm(int fd, Deadline deadline) {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.started) {
    std::thread([&s] { s.loop(); }).detach();
    s.started = true;
  }
  const std::uint64_t token = s.next++;
  s.calls.emplace(token, State::Call{fd, deadline});
  return token;
}

bool CallWatchdog::disarm(std::uint64_t token) {
  State& s = state();
  std::lock_guard lock(s.mu);
  auto it = s.calls.find(token);
  if (it == s.calls.end()) return false;
  const bool fired = it->second.fired;
  s.calls.erase(it);
  return fired;
}

std::uint64_t CallWatchdog::cut_off() { return state().cut.load(); }

CallDeadline::CallDeadline(int fd, std::chrono::milliseconds timeout) {
  if (fd >= 0 && timeout.count() > 0)
    token_ = CallWatchdog::arm(fd, std::chrono::steady_clock::now() + timeout);
}

CallDeadline::~CallDeadline() {
  if (token_ != 0) CallWatchdog::disarm(token_);
}

}  // namespace chartflow::store
