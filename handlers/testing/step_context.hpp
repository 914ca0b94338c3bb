// Test-only: one attempt of one chart step as the engine presents it. sql() is a transaction the
// test owns (it commits or rolls back as the engine would, or as a crash would); journal() commits
// at once on a connection of its own, as the engine's does, so a handler's record of an outside
// call outlives a rolled-back attempt here too. Header-only; test binaries only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::testing {

// Runs fn in a transaction of its own that commits when fn returns (a store::Store's with_sql).
using JournalFn = std::function<void(const std::function<void(Sql&)>&)>;

class TestStepContext : public StepContext {
 public:
  TestStepContext(Sql& sql, JournalFn journal, std::int64_t run_id, std::string step,
                  const Json& event, const Json& input, const Wake* wake, int attempt)
      : sql_(sql),
        journal_(std::move(journal)),
        run_id_(run_id),
        step_(std::move(step)),
        event_(event),
        input_(input),
        wake_(wake),
        attempt_(attempt),
        key_("run-" + std::to_string(run_id) + "/" + step_) {}

  std::int64_t run_id() const override { return run_id_; }
  const std::string& workflow() const override { return workflow_; }
  const std::string& step() const override { return step_; }
  int attempt() const override { return attempt_; }
  const std::string& idempotency_key() const override { return key_; }
  TimePoint deadline() const override { return Clock::now() + std::chrono::minutes(1); }
  std::int64_t event_id() const override { return run_id_; }
  const std::string& event_type() const override { return event_type_; }
  const Json& event() const override { return event_; }
  const Json& input() const override { return input_; }
  const Json& needs() const override { return needs_; }
  const Json& config() const override { return config_; }
  const Wake* wake() const override { return wake_; }
  Sql& sql() override { return sql_; }
  void journal(const std::function<void(Sql&)>& fn) override { journal_(fn); }
  void log(LogLevel, std::string_view message, const Json& fields) override {
    logs.push_back(std::string(message) + " " + fields.dump());
  }

  std::vector<std::string> logs;

 private:
  Sql& sql_;
  JournalFn journal_;
  std::int64_t run_id_;
  std::string step_;
  const Json& event_;
  const Json& input_;
  const Wake* wake_;
  int attempt_;
  std::string key_;
  const std::string workflow_ = "chart-update";
  const std::string event_type_ = "chart.uploaded";
  const Json needs_ = Json::object();
  const Json config_ = Json::object();
};

}  // namespace chartflow::handlers::testing
