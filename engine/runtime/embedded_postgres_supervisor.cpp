#include "runtime/embedded_postgres_supervisor.hpp"

#include <algorithm>
#include <exception>
#include <utility>

#include "runtime/log.hpp"

namespace chartflow::runtime {
namespace {

long long millis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

PostgresSupervisor::PostgresSupervisor(std::function<bool()> alive, std::function<void()> restart)
    : alive_(std::move(alive)), restart_(std::move(restart)) {}

PostgresSupervisor::~PostgresSupervisor() { stop(); }

void PostgresSupervisor::start(SupervisorSettings settings) {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  // Written before the thread exists, so the thread reads settings_ without the mutex.
  settings_ = std::move(settings);
  stopping_ = false;
  down_since_.reset();
  failures_ = 0;
  thread_ = std::thread([this] { run(); });
}

void PostgresSupervisor::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  std::lock_guard lock(mutex_);
  // Stopped on purpose: an outage it was riding out is no longer its to report.
  down_since_.reset();
  failures_ = 0;
}

std::optional<std::string> PostgresSupervisor::unhealthy_reason() const {
  std::lock_guard lock(mutex_);
  return unhealthy_reason_locked(Clock::now());
}

int PostgresSupervisor::restarts() const {
  std::lock_guard lock(mutex_);
  return restarts_;
}

std::optional<std::string> PostgresSupervisor::unhealthy_reason_locked(
    Clock::time_point now) const {
  if (!down_since_ || failures_ == 0) return std::nullopt;
  const auto down = now - *down_since_;
  if (failures_ < settings_.failures_until_unhealthy && down < settings_.downtime_until_unhealthy)
    return std::nullopt;
  return "embedded PostgreSQL failed to restart " + std::to_string(failures_) +
         (failures_ == 1 ? " time" : " times") + " and has been down for " +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(down).count()) + " s";
}

bool PostgresSupervisor::wait(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, duration, [this] { return stopping_; });
}

void PostgresSupervisor::run() {
  while (wait(settings_.check_interval)) {
    try {
      if (!alive_()) recover();
    } catch (const std::exception& e) {
      // A thread may not end in an exception; the next check tries again.
      Log::error("embedded_postgres_supervisor_error", {{"error", e.what()}});
    }
  }
}

void PostgresSupervisor::recover() {
  const auto since = Clock::now();
  {
    std::lock_guard lock(mutex_);
    down_since_ = since;
    failures_ = 0;
  }
  Log::warn("embedded_postgres_died");
  auto backoff = settings_.first_backoff;
  bool reported_unhealthy = false;
  for (int attempt = 1;; ++attempt) {
    std::optional<std::string> error;
    try {
      restart_();
    } catch (const std::exception& e) {
      error = e.what();
    }
    const auto now = Clock::now();
    if (!error) {
      {
        std::lock_guard lock(mutex_);
        ++restarts_;
        down_since_.reset();
        failures_ = 0;
      }
      Log::info("embedded_postgres_restarted",
                {{"downtime_ms", millis(now - since)}, {"attempts", attempt}});
      if (settings_.on_restart) settings_.on_restart();
      return;
    }
    std::optional<std::string> unhealthy;
    {
      std::lock_guard lock(mutex_);
      ++failures_;
      unhealthy = unhealthy_reason_locked(now);
    }
    Log::warn("embedded_postgres_restart_failed",
              {{"attempt", attempt}, {"retry_in_ms", backoff.count()}, {"error", *error}});
    if (unhealthy && !reported_unhealthy) {
      Log::error("embedded_postgres_unhealthy", {{"reason", *unhealthy}});
      reported_unhealthy = true;
    }
    if (!wait(backoff)) return;
    backoff = std::min(backoff * 2, settings_.max_backoff);
    if (alive_()) {
      // Started by someone else meanwhile (an operator's pg_ctl start): nothing left to do.
      {
        std::lock_guard lock(mutex_);
        down_since_.reset();
        failures_ = 0;
      }
      Log::info("embedded_postgres_running_again", {{"downtime_ms", millis(Clock::now() - since)}});
      return;
    }
  }
}

}  // namespace chartflow::runtime
