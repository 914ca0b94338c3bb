// A small pool of database sessions for request-handling threads. A Lease returns its Store
// to the pool, or drops it after a connection failure so the next user reconnects.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/errors.hpp"
#include "store/store.hpp"

namespace chartflow::runtime {

class StorePool {
 public:
  StorePool(std::string dsn, int max_size) : dsn_(std::move(dsn)), max_size_(max_size) {}

  class Lease {
   public:
    Lease(StorePool& pool, std::unique_ptr<store::Store> s) : pool_(pool), store_(std::move(s)) {}
    Lease(Lease&&) = default;
    ~Lease() { pool_.give_back(std::move(store_), broken_); }
    store::Store* operator->() { return store_.get(); }
    store::Store& operator*() { return *store_; }
    void mark_broken() { broken_ = true; }

   private:
    StorePool& pool_;
    std::unique_ptr<store::Store> store_;
    bool broken_ = false;
  };

  // Waits at most the store's call timeout for a free session: when every session is stuck on a
  // lost server, a caller gets an error it can answer 503 with rather than a hang.
  Lease acquire() { return acquire_within(store::Store::call_timeout()); }

  Lease acquire_within(std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, wait, [&] { return !idle_.empty() || open_ < max_size_; }))
      throw store::TransientError("no database session free: every one is waiting on the server");
    if (!idle_.empty()) {
      auto s = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(s));
    }
    ++open_;
    lock.unlock();
    try {
      return Lease(*this, std::make_unique<store::Store>(dsn_));
    } catch (...) {
      std::lock_guard relock(mu_);
      --open_;
      cv_.notify_one();
      throw;
    }
  }

  // Runs fn with a pooled store. A transient failure drops that connection and is rethrown:
  // the outcome of a write may be unknown, so the caller decides whether to try again.
  template <typename Fn>
  auto with(Fn&& fn) -> decltype(fn(std::declval<store::Store&>())) {
    auto lease = acquire();
    try {
      return fn(*lease);
    } catch (const store::TransientError&) {
      lease.mark_broken();
      throw;
    }
  }

  const std::string& dsn() const { return dsn_; }

  struct Stats {
    int in_use = 0, idle = 0, max = 0;
  };
  Stats stats() {
    std::lock_guard lock(mu_);
    const int idle = static_cast<int>(idle_.size());
    return Stats{open_ - idle, idle, max_size_};
  }

 private:
  void give_back(std::unique_ptr<store::Store> s, bool broken) {
    std::vector<std::unique_ptr<store::Store>> stale;
    {
      std::lock_guard lock(mu_);
      if (s && !broken) {
        idle_.push_back(std::move(s));
      } else if (s) {
        --open_;
        // One broken session means the server went away (a restart, a failover): its idle
        // siblings are connected to the same lost server, so they go too, rather than each
        // failing one request first.
        open_ -= static_cast<int>(idle_.size());
        stale.swap(idle_);
      }
    }
    cv_.notify_all();
    // stale closes here, outside the lock (closing may wait on the network).
  }

  std::string dsn_;
  int max_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<store::Store>> idle_;
  int open_ = 0;
};

}  // namespace chartflow::runtime
