// Two views of the same handlers, measured in one run. Handler::run as a worker calls it, with a
// StepContext that has no database behind it, so the figures are the handler's own cost: the
// built-in noop (in-process), a Lambda-style Python hello-world on a fresh process (cold: start,
// import, first call) and on a warm one. Then the same step through the engine on PostgreSQL
// (embedded unless --database-url), noop and Python alternating, as the worker times it.
#include "tools/bench/handler_bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "app/modules.hpp"
#include "config/workflow_loader.hpp"
#include "runtime/embedded_postgres.hpp"
#include "runtime/engine.hpp"
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
  void journal(const std::function<void(Sql&)>&) override {
    throw std::logic_error("no database in the handler benchmark");
  }
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

// The same one-step workflow twice: with the built-in noop and with the Python handler.
std::string step_workflow(const std::string& name, const std::string& handler) {
  return "name: " + name + "\non: [{ event: " + name +
         " }]\nsteps:\n  hello: { handler: " + handler + " }\n";
}

struct EngineFigures {
  std::vector<double> noop_ms, python_ms;
};

// Through the engine on PostgreSQL: one run at a time, alternating between the two workflows,
// each step timed by the worker (claim excluded; handler plus the step's finishing statement).
EngineFigures engine_step_times(const std::map<std::string, std::string>& options,
                                const std::filesystem::path& dir, int n) {
  std::unique_ptr<runtime::EmbeddedPostgres> embedded;
  std::string dsn;
  if (auto it = options.find("database-url"); it != options.end()) {
    dsn = it->second;
  } else {
    embedded = std::make_unique<runtime::EmbeddedPostgres>(dir / "pg");
    dsn = embedded->start();
  }
  store::Store store(dsn);
  store.migrate(app::module_migrations());
  auto handlers = app::make_modules(dir)->handler_registry();
  const std::string python =
      "{ runtime: python3, entry: hello.lambda_handler, timeout: 3s, memory: 256Mi }";
  std::vector<core::Workflow> workflows;
  for (const auto& text :
       {step_workflow("bench-noop", "noop"), step_workflow("bench-python", python)}) {
    auto r = config::load_workflow_text(text, "bench.yaml", runtime::handler_check(*handlers));
    if (!r.workflow) throw std::runtime_error(r.errors.front().to_string());
    workflows.push_back(*r.workflow);
  }
  auto registry = std::make_shared<runtime::WorkflowRegistry>();
  registry->publish(store, workflows);
  runtime::prewarm_external_handlers(*handlers, workflows);

  EngineFigures figures;
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  runtime::EngineHooks hooks;
  hooks.step_finished = [&](const std::string& wf, const std::string&, double secs,
                            const std::string&) {
    std::lock_guard lock(mu);
    (wf == "bench-noop" ? figures.noop_ms : figures.python_ms).push_back(secs * 1000);
    ++finished;
    cv.notify_all();
  };
  runtime::EngineSettings settings;
  settings.dsn = dsn;
  settings.workers = 1;
  runtime::Engine engine(settings, handlers, registry, hooks);
  engine.start();
  for (int i = 0; i < 2 * n + 20; ++i) {
    store::EventInput ev;
    ev.type = i % 2 ? "bench-python" : "bench-noop";
    ev.body = {{"name", "chartflow"}};
    engine.ingest(std::move(ev));
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == i + 1; });
    if (i == 19) figures = {};  // warm-up: connections, prepared statements, caches
  }
  engine.drain();
  if (embedded) embedded->stop();
  return figures;
}

void print_row(const char* label, const std::vector<double>& v) {
  const auto p = percentiles(v);
  std::printf("  %-34s %10.3f %10.3f   (%zu samples)\n", label, p.p50, p.p99, v.size());
}

}  // namespace

int run_handler_bench(const std::map<std::string, std::string>& options) {
  // Logs of the embedded server and the engine would drown the table.
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

  auto registry = app::make_modules(dir)->handler_registry();
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

  const int engine_n = get("engine-runs", 500);
  const EngineFigures through_engine = engine_step_times(options, dir, engine_n);

  const auto c = percentiles(cold), w = percentiles(warm), b = percentiles(builtin);
  const auto en = percentiles(through_engine.noop_ms), ep = percentiles(through_engine.python_ms);
  const char* interpreter = std::getenv("CHARTFLOW_PYTHON");
  std::printf("chartflow handler benchmark (Lambda-style Python hello-world, %s)\n",
              interpreter ? interpreter : "python3 from PATH");
  std::printf("  %-34s %10s %10s\n", "Handler::run latency (ms)", "p50", "p99");
  print_row("python3 cold (first invocation)", cold);
  print_row("python3 warm (pooled process)", warm);
  print_row("built-in noop (in-process)", builtin);
  std::printf("  %-34s %10s %10s\n", "step time in the engine (ms)", "p50", "p99");
  print_row("python3 warm step", through_engine.python_ms);
  print_row("built-in noop step", through_engine.noop_ms);
  const double overhead_p99 = ep.p99 - en.p99;
  const double speedup = c.p50 / w.p50;
  std::printf(
      "  warm overhead per invocation over built-in: Handler::run p50 %.3f / p99 %.3f ms;"
      " engine step p50 %.3f / p99 %.3f ms\n",
      w.p50 - b.p50, w.p99 - b.p99, ep.p50 - en.p50, overhead_p99);
  std::printf("  cold / warm (p50): %.0fx\n", speedup);
  std::printf("targets: warm step adds <= 2 ms at p99 [%s]; warm >= 20x faster than cold [%s]\n",
              overhead_p99 <= 2.0 ? "met" : "NOT met", speedup >= 20 ? "met" : "NOT met");
  registry.reset();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace chartflow::bench
