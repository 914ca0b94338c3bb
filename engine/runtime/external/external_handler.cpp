#include "runtime/external/external_handler.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <random>

#include "engine/util/duration.hpp"

namespace chartflow::runtime::external {

extern const char* const kPythonAdapter;  // engine/runtime/external/chartflow_lambda.py

namespace {

constexpr std::size_t kMaxErrorText = 500;

// Lambda's aws_request_id is a UUID; handlers that log or key on it expect that shape.
std::string request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::uint64_t a = rng(), b = rng();
  return fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                     0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffffULL);
}

std::int64_t epoch_ms(TimePoint t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

Json wake_json(const Wake* wake) {
  if (wake == nullptr) return nullptr;
  const char* kind = wake->kind == Wake::Kind::kSignal     ? "signal"
                     : wake->kind == Wake::Kind::kDeadline ? "deadline"
                                                           : "timer";
  return {{"kind", kind}, {"signal", wake->signal}, {"payload", wake->payload}};
}

std::string clip(std::string s) {
  if (s.size() > kMaxErrorText) s = s.substr(0, kMaxErrorText) + "...";
  return s;
}

StepOutcome outcome_of(const Json& response) {
  if (response.contains("output")) return Completed{response.at("output")};
  if (response.contains("error")) {
    const Json& e = response.at("error");
    if (e.is_string()) return Fail{clip("handler error: " + e.get<std::string>())};
    const std::string type = e.value("type", std::string("Error"));
    const std::string message = e.value("message", std::string());
    return Fail{clip("handler error: " + type + (message.empty() ? "" : ": " + message)),
                e.value("permanent", false)};
  }
  if (response.contains("wait_for_signal")) {
    const Json& w = response.at("wait_for_signal");
    const Json signal = w.is_object() ? w.value("signal", Json()) : w;
    if (!signal.is_string() || signal.get<std::string>().empty())
      return Fail{"handler asked to wait without a signal name"};
    WaitForSignal out{signal.get<std::string>(), std::nullopt};
    if (w.is_object() && w.contains("timeout_ms") && w.at("timeout_ms").is_number_integer())
      out.deadline = Clock::now() + Millis(w.at("timeout_ms").get<std::int64_t>());
    return out;
  }
  return Fail{"handler response has none of output, error, wait_for_signal"};
}

}  // namespace

PythonRuntime default_python_runtime() {
  PythonRuntime python;
  if (const char* v = std::getenv("CHARTFLOW_PYTHON"); v && *v) python.interpreter = v;
  python.adapter_source = kPythonAdapter;
  return python;
}

ExternalHandler::ExternalHandler(ExternalSettings settings)
    : settings_(std::move(settings)), pools_(settings_.hooks) {}

void ExternalHandler::validate(const Json& config) const {
  (void)parse_external_spec(config, settings_.workflows_dir, settings_.python);
}

HandlerPool& ExternalHandler::pool_for(const Json& config) {
  const std::string key = config.dump();
  std::lock_guard lock(mu_);
  auto& slot = pools_by_config_[key];
  if (slot == nullptr) {
    ExternalSpec spec = parse_external_spec(config, settings_.workflows_dir, settings_.python);
    spec.run_as = settings_.hooks.run_as;
    slot = &pools_.pool(std::move(spec));
  }
  return *slot;
}

void ExternalHandler::prewarm(const Json& config) { (void)pool_for(config); }

StepOutcome ExternalHandler::run(StepContext& ctx) {
  HandlerPool* found = nullptr;
  try {
    found = &pool_for(ctx.config());
  } catch (const std::invalid_argument& e) {
    return Fail{std::string("handler settings: ") + e.what(), true};
  }
  HandlerPool& pool = *found;
  const ExternalSpec* spec = &pool.spec();
  // The handler's own timeout, cut short by the step's deadline when that comes first.
  const auto started = Clock::now();
  const Millis budget = std::max(
      Millis(0),
      std::min(spec->timeout, std::chrono::duration_cast<Millis>(ctx.deadline() - started)));
  const auto wall_deadline = started + budget;
  const auto deadline = std::chrono::steady_clock::now() + budget;

  std::optional<HandlerPool::Lease> lease;
  try {
    lease = pool.acquire(deadline);
  } catch (const std::exception& e) {
    return Fail{std::string("cannot start handler: ") + e.what()};
  }
  if (!lease)
    return Fail{fmt::format("no free process for handler {} before the deadline (concurrency {})",
                            spec->name, spec->concurrency)};

  const std::string id = request_id();
  const Json request = {{"id", id},
                        {"event", ctx.event()},
                        {"input", ctx.input()},
                        {"steps", ctx.needs()},
                        {"context",
                         {{"run_id", ctx.run_id()},
                          {"workflow", ctx.workflow()},
                          {"step", ctx.step()},
                          {"attempt", ctx.attempt()},
                          {"idempotency_key", ctx.idempotency_key()},
                          {"deadline_ms", epoch_ms(wall_deadline)},
                          {"event_id", ctx.event_id()},
                          {"event_type", ctx.event_type()},
                          {"function_name", spec->name},
                          {"memory_limit_in_mb", spec->memory_bytes >> 20},
                          {"cold_start", lease->cold},
                          {"wake", wake_json(ctx.wake())}}}};
  const LogSink log = [&ctx](LogLevel level, std::string_view message, const Json& fields) {
    ctx.log(level, message, fields);
  };
  InvokeResult r =
      lease->process->invoke(request.dump(-1, ' ', false, Json::error_handler_t::replace), id,
                             deadline, spec->max_output, log);
  const bool reuse = r.kind == InvokeResult::Kind::kResponse && lease->process->stray_output() == 0;
  pool.release(std::move(lease->process), reuse);
  switch (r.kind) {
    case InvokeResult::Kind::kResponse:
      return outcome_of(r.response);
    case InvokeResult::Kind::kTimeout:
      return Fail{fmt::format("handler timed out after {} (process group killed)",
                              core::format_duration(budget))};
    default:
      return Fail{r.detail};
  }
}

}  // namespace chartflow::runtime::external
