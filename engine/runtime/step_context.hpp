// The StepContext a handler sees for one attempt of one step. Lives on the worker's stack for the
// duration of Handler::run; not shared between threads.
#pragma once

#include <functional>
#include <optional>
#include <utility>

#include "core/trace.hpp"
#include "core/workflow.hpp"
#include "engine/handler.hpp"
#include "runtime/log.hpp"
#include "store/store.hpp"

namespace chartflow::runtime {

class StepContextImpl : public StepContext {
 public:
  using Journal = std::function<void(const std::function<void(Sql&)>&)>;

  StepContextImpl(const store::ClaimedStep& claimed, const core::Step& def, const Json& event,
                  store::StepBatch& batch, Journal journal)
      : claimed_(claimed),
        def_(def),
        event_(event),
        batch_(batch),
        journal_(std::move(journal)),
        idempotency_key_("run-" + std::to_string(claimed.run_id) + "/" + claimed.step_key) {
    if (claimed.wake) {
      const Json& w = *claimed.wake;
      Wake wake;
      const std::string kind = w.value("kind", std::string("timer"));
      wake.kind = kind == "signal"     ? Wake::Kind::kSignal
                  : kind == "deadline" ? Wake::Kind::kDeadline
                                       : Wake::Kind::kTimer;
      if (w.contains("signal") && w.at("signal").is_string()) wake.signal = w.at("signal");
      wake.payload = w.value("payload", Json::object());
      wake_ = std::move(wake);
    }
  }

  std::int64_t run_id() const override { return claimed_.run_id; }
  const std::string& workflow() const override { return claimed_.workflow; }
  const std::string& step() const override { return claimed_.step_key; }
  int attempt() const override { return claimed_.attempt; }
  const std::string& idempotency_key() const override { return idempotency_key_; }
  TimePoint deadline() const override { return claimed_.deadline; }
  std::int64_t event_id() const override { return claimed_.event_id; }
  const std::string& event_type() const override { return claimed_.event_type; }
  const Json& event() const override { return event_; }
  const Json& input() const override { return input_ ? *input_ : def_.input; }
  // A for_each element's input: the step's, with the element beside it (core/for_each.hpp).
  void set_input(Json input) { input_ = std::move(input); }
  std::string traceparent() const override {
    if (!claimed_.trace_id) return {};
    return core::format_traceparent(*claimed_.trace_id,
                                    core::step_span_id(*claimed_.trace_id, claimed_.run_id,
                                                       claimed_.step_key, claimed_.attempt));
  }
  const Json& needs() const override { return claimed_.needs_output; }
  const Json& config() const override { return def_.handler.config; }
  const Wake* wake() const override { return wake_ ? &*wake_ : nullptr; }
  Sql& sql() override { return batch_.sql(); }
  // Carried by the claim: billing and discharge ask on every step, and a query each would be
  // paid for the rare reprocess.
  const Json& rerun() override { return claimed_.rerun; }
  void journal(const std::function<void(Sql&)>& fn) override { journal_(fn); }
  void log(LogLevel level, std::string_view message, const Json& fields) override {
    store::LogRecord r{static_cast<int>(level),
                       std::string(message),
                       claimed_.workflow,
                       claimed_.run_id,
                       claimed_.step_key,
                       claimed_.attempt,
                       fields};
    Log::to_stderr(r);
    batch_.log(r);
  }

 private:
  const store::ClaimedStep& claimed_;
  const core::Step& def_;
  const Json& event_;
  store::StepBatch& batch_;
  Journal journal_;
  std::string idempotency_key_;
  std::optional<Wake> wake_;
  std::optional<Json> input_;
};

}  // namespace chartflow::runtime
