#include "runtime/builtin_handlers.hpp"

#include <stdexcept>
#include <thread>

namespace chartflow::runtime {
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

// Holds its worker thread for input.ms, like CPU-bound work; for timeout and crash tests.
class WorkHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    const auto ms = ctx.input().value("ms", 0);
    const auto until = std::chrono::steady_clock::now() + Millis(ms);
    while (std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::min<Millis>(Millis(10), Millis(ms)));
    return Completed{{{"worked_ms", ms}, {"attempt", ctx.attempt()}}};
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
  registry.add("work", std::make_shared<WorkHandler>());
}

}  // namespace chartflow::runtime
