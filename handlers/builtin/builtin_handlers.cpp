#include "handlers/builtin/builtin_handlers.hpp"

#include <stdexcept>

namespace chartflow::handlers {
namespace {

class NoopHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override { return Completed{ctx.input()}; }
};

class SleepHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    // Resumed by the durable timer: the wait is over.
    if (ctx.wake() != nullptr) return Completed{ctx.input()};
    const auto ms = ctx.input().value("ms", 0);
    if (ms <= 0) return Completed{ctx.input()};
    return WaitUntil{Clock::now() + Millis(ms)};
  }
  void validate(const Json& config) const override {
    if (config.contains("ms") && !config.at("ms").is_number_integer())
      throw std::invalid_argument("sleep: input.ms must be an integer number of milliseconds");
  }
};

class FailHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    const std::string message = ctx.input().value("message", std::string("failed by request"));
    ctx.log(LogLevel::kError, message);
    return Fail{message, ctx.input().value("permanent", false)};
  }
};

class FlakyHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    const int failures = ctx.input().value("failures", 1);
    if (ctx.attempt() <= failures)
      return Fail{"flaky: attempt " + std::to_string(ctx.attempt()) + " fails by design"};
    return Completed{{{"attempt", ctx.attempt()}}};
  }
};

class WaitSignalHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    const Wake* wake = ctx.wake();
    if (wake != nullptr && wake->kind == Wake::Kind::kSignal)
      return Completed{{{"signal", wake->signal}, {"payload", wake->payload}}};
    if (wake != nullptr && wake->kind == Wake::Kind::kDeadline)
      return Fail{"no signal before the deadline", true};
    std::optional<TimePoint> deadline;
    if (ctx.input().contains("timeout_ms"))
      deadline = Clock::now() + Millis(ctx.input().at("timeout_ms").get<std::int64_t>());
    return WaitForSignal{ctx.input().value("signal", std::string("continue")), deadline};
  }
};

}  // namespace

void register_builtin_handlers(HandlerRegistry& registry) {
  registry.add("noop", std::make_shared<NoopHandler>());
  registry.add("sleep", std::make_shared<SleepHandler>());
  registry.add("fail", std::make_shared<FailHandler>());
  registry.add("flaky", std::make_shared<FlakyHandler>());
  registry.add("wait_signal", std::make_shared<WaitSignalHandler>());
}

}  // namespace chartflow::handlers
