#include "auth/audit_sealer.hpp"

#include "auth/audit.hpp"

namespace chartflow::auth {

AuditSealer::AuditSealer(InTransaction run, OnError on_error, std::chrono::milliseconds period)
    : run_(std::move(run)), on_error_(std::move(on_error)), period_(period) {}

AuditSealer::~AuditSealer() { stop(); }

void AuditSealer::start() {
  if (thread_.joinable()) return;
  // The first tick also seals what earlier processes left unsealed (a crash, a CLI command).
  record_pending_again();
  thread_ = std::thread([this] { loop(); });
}

void AuditSealer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  seal_if_needed();
}

void AuditSealer::loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return stopping_; })) {
    lock.unlock();
    seal_if_needed();
    lock.lock();
  }
}

void AuditSealer::seal_if_needed() {
  if (!take_unsealed()) return;
  try {
    run_([](Sql& sql) { seal(sql); });
  } catch (const std::exception& e) {
    // Unsealed records stay for the next try, by this process or any other.
    record_pending_again();
    if (on_error_) on_error_(e.what());
  }
}

}  // namespace chartflow::auth
