// Seals the audit trail in the background: about once a period after this process recorded
// something, so a record joins the chain within a period or two of its commit, and an idle
// server sends no query at all.
//
// Optionally it also exports the chain's head (the newest record's hash and the record count)
// out of the database, so that removing the newest records is caught by
// `chartflow audit verify --expect-head HASH`: every `interval`, when the head has changed, it
// appends a JSON line {"at", "count", "head"} to a file and passes the head to a callback (the
// server logs it, so it reaches syslog or the journal with the rest of the log).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "auth/audit.hpp"
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

  struct HeadExport {
    std::string file;  // appended to; empty: only the callback
    std::chrono::milliseconds interval = std::chrono::minutes(5);
    std::function<void(const AuditHead&)> on_export;
  };
  // Before start().
  void export_head(HeadExport how);

  void start();
  // Seals what is left, then returns.
  void stop();

 private:
  void loop();
  void seal_if_needed();
  void export_head_if_due(bool force);

  InTransaction run_;
  OnError on_error_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::optional<HeadExport> head_export_;
  std::chrono::steady_clock::time_point next_export_{};
  std::string exported_hash_;
  std::thread thread_;
};

}  // namespace chartflow::auth
