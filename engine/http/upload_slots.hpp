// A server-wide limit on how many large request bodies are read and handled at once. Memory for
// uploads is then bounded by slots x (body + parse) however many clients send at the same time;
// the others wait, in arrival order, for a slot before their body is read. The wait is bounded
// too: at most `max_waiters` queue (the next is refused at once), and a waiter may withdraw when
// its own deadline passes, so slow clients holding every slot cannot make the queue grow without
// end or keep anyone waiting forever.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace chartflow::http {

// Held while a large body is read and handled; the slot returns when the last copy is dropped.
using UploadSlot = std::shared_ptr<void>;

class UploadSlots {
 public:
  explicit UploadSlots(int slots, int max_waiters = 64);

  // Calls `granted` with a slot: at once (on this thread) when one is free, else later from the
  // thread that returns one. `granted` must be quick; it should post its real work elsewhere.
  // Returns the waiter's ticket (0: granted at once), or -1 when the queue is full and nothing
  // will be called.
  std::int64_t acquire(std::function<void(UploadSlot)> granted);
  // Leaves the queue; true when the waiter was still waiting (`granted` will never be called).
  bool withdraw(std::int64_t ticket);
  // Drops the waiters (at shutdown); returned slots are not handed on after this.
  void close();
  // Slots held now, and uploads waiting for one (for /metrics, and for tests to wait on).
  int in_use() const;
  int waiting() const;

 private:
  void release();

  struct Waiter {
    std::int64_t ticket;
    std::function<void(UploadSlot)> granted;
  };
  mutable std::mutex mutex_;
  int slots_;
  int free_;
  std::size_t max_waiters_;
  std::int64_t next_ticket_ = 1;
  bool closed_ = false;
  std::deque<Waiter> waiters_;
};

}  // namespace chartflow::http
