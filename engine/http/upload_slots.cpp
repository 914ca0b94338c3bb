#include "http/upload_slots.hpp"

#include <algorithm>

namespace chartflow::http {

UploadSlots::UploadSlots(int slots) : free_(std::max(1, slots)) {}

void UploadSlots::acquire(std::function<void(UploadSlot)> granted) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (free_ == 0) {
      waiters_.push_back(std::move(granted));
      return;
    }
    --free_;
  }
  granted(UploadSlot(static_cast<void*>(this), [this](void*) { release(); }));
}

void UploadSlots::release() {
  std::function<void(UploadSlot)> next;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || waiters_.empty()) {
      ++free_;
      return;
    }
    next = std::move(waiters_.front());
    waiters_.pop_front();
  }
  // The slot passes straight to the next waiter, so a newcomer cannot take it first.
  next(UploadSlot(static_cast<void*>(this), [this](void*) { release(); }));
}

void UploadSlots::close() {
  std::deque<std::function<void(UploadSlot)>> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    dropped.swap(waiters_);
  }
  // Destroyed outside the lock: a waiter may own the last reference to its session.
}

}  // namespace chartflow::http
