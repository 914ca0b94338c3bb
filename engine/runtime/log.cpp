#include "runtime/log.hpp"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace chartflow::runtime {
namespace {

std::atomic<int> g_stderr_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mu;
std::vector<store::LogRecord> g_pending;
constexpr std::size_t kMaxPending = 10'000;

std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

const char* level_name(int level) {
  switch (level) {
    case 0:
      return "debug";
    case 1:
      return "info";
    case 2:
      return "warning";
    default:
      return "error";
  }
}

std::optional<int> parse_level(std::string_view name) {
  // CHARTFLOW_LOG_LEVEL also sets Python handlers' level, where it is spelled in capitals.
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "debug") return 0;
  if (lower == "info") return 1;
  if (lower == "warning" || lower == "warn") return 2;
  if (lower == "error") return 3;
  return std::nullopt;
}

void Log::set_stderr_level(LogLevel level) { g_stderr_level = static_cast<int>(level); }
LogLevel Log::stderr_level() { return static_cast<LogLevel>(g_stderr_level.load()); }

void Log::to_stderr(const store::LogRecord& r) {
  if (r.level < g_stderr_level.load()) return;
  Json line = {{"at", now_rfc3339()}, {"level", level_name(r.level)}, {"message", r.message}};
  if (r.workflow) line["workflow"] = *r.workflow;
  if (r.run_id) line["run"] = *r.run_id;
  if (r.step) line["step"] = *r.step;
  if (r.attempt) line["attempt"] = *r.attempt;
  if (!r.fields.empty()) line["fields"] = r.fields;
  const std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);
}

void Log::write(LogLevel level, std::string_view message, const Json& fields, bool persist) {
  store::LogRecord r;
  r.level = static_cast<int>(level);
  r.message = std::string(message);
  r.fields = fields;
  to_stderr(r);
  if (!persist || level < LogLevel::kInfo) return;
  std::lock_guard lock(g_mu);
  if (g_pending.size() < kMaxPending) g_pending.push_back(std::move(r));
}

std::vector<store::LogRecord> Log::drain() {
  std::lock_guard lock(g_mu);
  std::vector<store::LogRecord> out;
  out.swap(g_pending);
  return out;
}

}  // namespace chartflow::runtime
