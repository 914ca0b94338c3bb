// Structured process log: one JSON line per event on stderr, and a bounded queue of records the
// dispatcher flushes into log_record so they are queryable by level and time.
// Thread-safe. Messages carry ids only, never chart content or patient data.
#pragma once

#include <mutex>
#include <string_view>
#include <vector>

#include "engine/handler.hpp"
#include "store/types.hpp"

namespace chartflow::runtime {

class Log {
 public:
  static void set_stderr_level(LogLevel level);
  static LogLevel stderr_level();
  static void write(LogLevel level, std::string_view message, const Json& fields = Json::object(),
                    bool persist = true);
  // Also the path for step logs: stderr only (the step's batch stores them).
  static void to_stderr(const store::LogRecord& record);
  static std::vector<store::LogRecord> drain();

  static void info(std::string_view m, const Json& f = Json::object()) {
    write(LogLevel::kInfo, m, f);
  }
  static void warn(std::string_view m, const Json& f = Json::object()) {
    write(LogLevel::kWarning, m, f);
  }
  static void error(std::string_view m, const Json& f = Json::object()) {
    write(LogLevel::kError, m, f);
  }
};

const char* level_name(int level);
std::optional<int> parse_level(std::string_view name);

}  // namespace chartflow::runtime
