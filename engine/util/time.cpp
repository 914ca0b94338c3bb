#include "engine/util/time.hpp"

#include <fmt/format.h>

#include <ctime>

namespace chartflow::util {

std::string iso8601(TimePoint t) {
  std::time_t secs = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::string epoch_seconds_text(TimePoint t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return fmt::format("{}.{:03}", ms / 1000, ms % 1000 < 0 ? -(ms % 1000) : ms % 1000);
}

TimePoint from_epoch_seconds(double seconds) {
  return TimePoint(
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
}

}  // namespace chartflow::util
