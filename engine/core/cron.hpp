// Cron expressions over wall-clock (civil) time, without time zones: the scheduler converts
// between a zone's wall clock and UTC (runtime/schedule_clock). A Cron is an immutable value,
// safe to share between threads.
//
// Syntax: five fields "minute hour day-of-month month day-of-week", or six with a leading
// seconds field. Each field: `*`, a number, a range `a-b`, a step `*/n` or `a-b/n` or `a/n`,
// or a comma list of those; months JAN-DEC and weekdays SUN-SAT (0 or 7 = Sunday) by name.
// Macros: @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly. As in Vixie cron,
// when both day fields are restricted a day matches if either does.
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>

namespace chartflow::core {

// Wall-clock time as seconds since 1970-01-01 00:00 of that clock (no zone, no leap seconds).
using CivilSeconds = std::chrono::sys_seconds;

class Cron {
 public:
  // Parses `text`; on error returns nullopt and sets *error to a message naming the field.
  static std::optional<Cron> parse(const std::string& text, std::string* error);

  // The first matching wall-clock second strictly after `t` (nullopt when none within 5 years,
  // e.g. "0 0 30 2 *").
  std::optional<CivilSeconds> next_after(CivilSeconds t) const;
  bool matches(CivilSeconds t) const;
  bool has_seconds() const { return has_seconds_; }

 private:
  bool day_matches(std::chrono::sys_days d) const;

  std::bitset<60> seconds_, minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool days_restricted_ = false, weekdays_restricted_ = false;
  bool has_seconds_ = false;
};

}  // namespace chartflow::core
