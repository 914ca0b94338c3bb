// Seals the audit trail in the background: about once a period after this process recorded
// something, so a record joins the chain within a period or two of its commit, and an idle
// server sends no query at all.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "engine/handler.hpp"

namespace chartflow::auth {

class AuditSealer {
 public:
  // Runs its argument in a transaction of its own and commits it.
  using InTransaction = std::function<void(const std::function<void(Sql&)>&)>;
  using OnError = std::function<void(const std::string&)>;

  AuditSealer(InTransaction run, OnError on_error,
              std::chrono::milliseconds period = std::chrono::seconds(1));
  ~AuditSealer();
  AuditSealer(const AuditSealer&) = delete;
  AuditSealer& operator=(const AuditSealer&) = delete;

  void start();
  // Seals what is left, then returns.
  void stop();

 private:
  void loop();
  void seal_if_needed();

  InTransaction run_;
  OnError on_error_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chartflow::auth
