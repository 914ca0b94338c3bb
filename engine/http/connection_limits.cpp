#include "http/connection_limits.hpp"

namespace chartflow::http {

ConnectionLimits::ConnectionLimits(int max_total, int max_per_client)
    : max_total_(max_total), max_per_client_(max_per_client) {}

std::shared_ptr<void> ConnectionLimits::admit(const std::string& address) {
  {
    std::lock_guard lock(mutex_);
    int& mine = per_client_[address];
    if ((max_total_ > 0 && total_ >= max_total_) ||
        (max_per_client_ > 0 && mine >= max_per_client_)) {
      if (mine == 0) per_client_.erase(address);
      return nullptr;
    }
    ++mine;
    ++total_;
  }
  return std::shared_ptr<void>(static_cast<void*>(this),
                               [this, address](void*) { release(address); });
}

void ConnectionLimits::release(const std::string& address) {
  std::lock_guard lock(mutex_);
  --total_;
  auto it = per_client_.find(address);
  if (it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
}

int ConnectionLimits::open() const {
  std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace chartflow::http
