// Parsed event bodies (with their traces) by event id, so the steps of one run do not re-read and
// re-parse the same event. Bounded LRU; thread-safe; events are immutable once stored, so caching
// is always valid.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "engine/handler.hpp"
#include "store/types.hpp"

namespace chartflow::runtime {

class EventCache {
 public:
  explicit EventCache(std::size_t capacity) : capacity_(capacity) {}

  std::shared_ptr<const store::StoredEvent> get(std::int64_t id) {
    std::lock_guard lock(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.second);
    return it->second.first;
  }

  void put(std::int64_t id, std::shared_ptr<const store::StoredEvent> body) {
    std::lock_guard lock(mu_);
    if (map_.count(id)) return;
    order_.push_front(id);
    map_.emplace(id, std::make_pair(std::move(body), order_.begin()));
    while (map_.size() > capacity_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
  }

 private:
  std::size_t capacity_;
  std::mutex mu_;
  std::list<std::int64_t> order_;
  std::unordered_map<std::int64_t, std::pair<std::shared_ptr<const store::StoredEvent>,
                                             std::list<std::int64_t>::iterator>>
      map_;
};

}  // namespace chartflow::runtime
