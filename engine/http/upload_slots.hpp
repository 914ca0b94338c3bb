// A server-wide limit on how many large request bodies are read and handled at once. Memory for
// uploads is then bounded by slots x (body + parse) however many clients send at the same time;
// the others wait, in arrival order, for a slot before their body is read.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace chartflow::http {

// Held while a large body is read and handled; the slot returns when the last copy is dropped.
using UploadSlot = std::shared_ptr<void>;

class UploadSlots {
 public:
  explicit UploadSlots(int slots);

  // Calls `granted` with a slot: at once (on this thread) when one is free, else later from the
  // thread that returns one. `granted` must be quick; it should post its real work elsewhere.
  void acquire(std::function<void(UploadSlot)> granted);
  // Drops the waiters (at shutdown); returned slots are not handed on after this.
  void close();

 private:
  void release();

  mutable std::mutex mutex_;
  int free_;
  bool closed_ = false;
  std::deque<std::function<void(UploadSlot)>> waiters_;
};

}  // namespace chartflow::http
