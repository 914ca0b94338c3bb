#include "auth/audit_sealer.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include "auth/audit.hpp"

namespace chartflow::auth {

AuditSealer::AuditSealer(InTransaction run, OnError on_error, std::chrono::milliseconds period)
    : run_(std::move(run)), on_error_(std::move(on_error)), period_(period) {}

AuditSealer::~AuditSealer() { stop(); }

void AuditSealer::export_head(HeadExport how) { head_export_ = std::move(how); }

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
  export_head_if_due(true);
}

void AuditSealer::loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return stopping_; })) {
    lock.unlock();
    seal_if_needed();
    export_head_if_due(false);
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

namespace chartflow::auth {

void AuditSealer::export_head_if_due(bool force) {
  if (!head_export_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now < next_export_) return;
  next_export_ = now + head_export_->interval;
  try {
    AuditHead h;
    run_([&h](Sql& sql) { h = head(sql); });
    if (h.hash.empty() || h.hash == exported_hash_) return;
    if (!head_export_->file.empty()) {
      char at[32];
      const std::time_t t = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&t, &tm);
      std::strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
      std::ofstream out(head_export_->file, std::ios::app);
      out << Json{{"at", at}, {"count", h.count}, {"head", h.hash}}.dump() << "\n";
      out.flush();
      if (!out)
        throw std::runtime_error("cannot append to the audit head file " + head_export_->file +
                                 ": " + std::strerror(errno));
    }
    exported_hash_ = h.hash;
    if (head_export_->on_export) head_export_->on_export(h);
  } catch (const std::exception& e) {
    if (on_error_) on_error_(e.what());
  }
}

}  // namespace chartflow::auth
