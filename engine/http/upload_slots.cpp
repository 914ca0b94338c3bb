#include "http/upload_slots.hpp"

#include <algorithm>

namespace chartflow::http {

UploadSlots::UploadSlots(int slots, int max_waiters)
    : slots_(std::max(1, slots)),
      free_(slots_),
      max_waiters_(static_cast<std::size_t>(std::max(0, max_waiters))) {}

std::int64_t UploadSlots::acquire(std::function<void(UploadSlot)> granted) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return -1;
    if (free_ == 0) {
      if (waiters_.size() >= max_waiters_) return -1;
      const std::int64_t ticket = next_ticket_++;
      waiters_.push_back({ticket, std::move(granted)});
      return ticket;
    }
    --free_;
  }
  granted(UploadSlot(static_cast<void*>(this), [this](void*) { release(); }));
  return 0;
}

bool UploadSlots::withdraw(std::int64_t ticket) {
  std::function<void(UploadSlot)> dropped;
  std::lock_guard lock(mutex_);
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it)
    if (it->ticket == ticket) {
      dropped = std::move(it->granted);
      waiters_.erase(it);
      return true;
    }
  return false;
}

void UploadSlots::release() {
  std::function<void(UploadSlot)> next;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || waiters_.empty()) {
      ++free_;
      return;
    }
    next = std::move(waiters_.front().granted);
    waiters_.pop_front();
  }
  // The slot passes straight to the next waiter, so a newcomer cannot take it first.
  next(UploadSlot(static_cast<void*>(this), [this](void*) { release(); }));
}

int UploadSlots::in_use() const {
  std::lock_guard lock(mutex_);
  return slots_ - free_;
}

int UploadSlots::waiting() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(waiters_.size());
}

void UploadSlots::close() {
  std::deque<Waiter> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    dropped.swap(waiters_);
  }
  // Destroyed outside the lock: a waiter may own the last reference to its session.
}

}  // namespace chartflow::http
