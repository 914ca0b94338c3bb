// Measures Handler::run as a worker calls it, with a StepContext that has no database behind it,
// so the figures are the handler's own cost: the built-in noop (in-process), a Lambda-style
// Python hello-world on a fresh process (cold: start, import, first call) and on a warm one.
#include "cli/handler_bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "runtime/external/external_handler.hpp"
#include "runtime/handler_setup.hpp"
#include "runtime/log.hpp"

namespace chartflow::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr const char* kHello = R"(import logging

logger = logging.getLogger(__name__)


def lambda_handler(event, context):
    return {"message": "hello " + event.get("name", "world")}
)";

class BenchContext : public StepContext {
 public:
  explicit BenchContext(Json config) : config_(std::move(config)) {}
  std::int64_t run_id() const override { return 1; }
  const std::string& workflow() const override { return workflow_; }
  const std::string& step() const override { return step_; }
  int attempt() const override { return 1; }
  const std::string& idempotency_key() const override { return key_; }
  TimePoint deadline() const override { return Clock::now() + std::chrono::seconds(30); }
  std::int64_t event_id() const override { return 1; }
  const std::string& event_type() const override { return type_; }
  const Json& event() const override { return event_; }
  const Json& input() const override { return input_; }
  const Json& needs() const override { return input_; }
  const Json& config() const override { return config_; }
  const Wake* wake() const override { return nullptr; }
  Sql& sql() override { throw std::logic_error("no database in the handler benchmark"); }
  void log(LogLevel, std::string_view, const Json&) override {}

 private:
  std::string workflow_ = "bench", step_ = "hello", key_ = "run-1/hello", type_ = "bench.hello";
  Json event_ = {{"name", "chartflow"}};
  Json input_ = Json::object();
  Json config_;
};

struct Percentiles {
  double p50 = 0, p99 = 0;
};

Percentiles percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))];
  };
  return {at(0.50), at(0.99)};
}

// Milliseconds per call of handler.run, one sample per call.
std::vector<double> time_calls(Handler& handler, const Json& config, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    BenchContext ctx(config);
    const auto t0 = SteadyClock::now();
    const StepOutcome outcome = handler.run(ctx);
    out.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
    if (!std::holds_alternative<Completed>(outcome))
      throw std::runtime_error("benchmark handler did not complete");
  }
  return out;
}

}  // namespace

int run_handler_bench(const std::map<std::string, std::string>& options) {
  runtime::Log::set_stderr_level(LogLevel::kWarning);
  auto get = [&](const char* k, int def) {
    auto it = options.find(k);
    return it == options.end() ? def : std::stoi(it->second);
  };
  const int warm_n = get("warm", 2000);
  const int cold_n = get("cold", 30);

  const auto dir = std::filesystem::temp_directory_path() /
                   ("chartflow-handler-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "hello.py") << kHello;

  auto registry = runtime::make_handler_registry(dir);
  Handler& noop = *registry->find("noop");
  Handler& python = *registry->find("python3");
  const auto python_config = [](const std::string& name, int min_warm) {
    return Json{{"runtime", "python3"}, {"entry", "hello.lambda_handler"},
                {"timeout", "3s"},      {"memory", "256Mi"},
                {"min_warm", min_warm}, {"name", name}};
  };

  // Cold: every sample is the first call of its own pool (nothing started ahead).
  std::vector<double> cold;
  for (int i = 0; i < cold_n; ++i) {
    auto c = time_calls(python, python_config("cold-" + std::to_string(i), 0), 1);
    cold.push_back(c.front());
  }
  // Warm: one pool, its process started ahead and used once before timing.
  const Json warm_config = python_config("warm", 1);
  (void)time_calls(python, warm_config, 50);
  const auto warm = time_calls(python, warm_config, warm_n);
  (void)time_calls(noop, Json::object(), 1000);
  const auto builtin = time_calls(noop, Json::object(), warm_n);

  const auto c = percentiles(cold), w = percentiles(warm), b = percentiles(builtin);
  const char* interpreter = std::getenv("CHARTFLOW_PYTHON");
  std::printf("chartflow handler benchmark (Lambda-style Python hello-world, %s)\n",
              interpreter ? interpreter : "python3 from PATH");
  std::printf("  %-28s %10s %10s\n", "invocation latency (ms)", "p50", "p99");
  std::printf("  %-28s %10.3f %10.3f   (%d samples)\n", "cold (first invocation)", c.p50, c.p99,
              cold_n);
  std::printf("  %-28s %10.3f %10.3f   (%d samples)\n", "warm (pooled process)", w.p50, w.p99,
              warm_n);
  std::printf("  %-28s %10.3f %10.3f   (%d samples)\n", "built-in noop (in-process)", b.p50, b.p99,
              warm_n);
  const double overhead_p99 = w.p99 - b.p99;
  const double speedup = c.p50 / w.p50;
  std::printf("  warm overhead over built-in: p50 %.3f ms, p99 %.3f ms\n", w.p50 - b.p50,
              overhead_p99);
  std::printf("  cold / warm (p50): %.0fx\n", speedup);
  std::printf("targets: warm adds <= 2 ms at p99 [%s]; warm >= 20x faster than cold [%s]\n",
              overhead_p99 <= 2.0 ? "met" : "NOT met", speedup >= 20 ? "met" : "NOT met");
  registry.reset();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace chartflow::bench
