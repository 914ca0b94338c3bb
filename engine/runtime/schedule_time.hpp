// Schedule ticks in real time: a cron expression read in a time zone's wall clock (IANA zone
// names, from the system's zoneinfo through the date library) and the missed-tick policy.
// Pure functions over values; thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/cron.hpp"

namespace date {
class time_zone;
}

namespace chartflow::runtime {

using SysSeconds = std::chrono::sys_seconds;

// Ticks that are this late (or one period late, when the schedule is more frequent) still count
// as on time: a scheduler delayed by a slow database does not skip them.
inline constexpr std::chrono::seconds kOnTimeGrace{60};
inline constexpr int kDefaultCatchUpLimit = 24;

struct Schedule {
  std::string workflow;
  std::string expression;  // as written, e.g. "0 0 * * *"
  std::string timezone = "UTC";
  core::Cron cron;
  const date::time_zone* zone = nullptr;
  bool catch_up = false;
  int catch_up_limit = kDefaultCatchUpLimit;
  // Names the schedule's stored state; a changed expression or zone starts afresh.
  std::string state_key() const { return workflow + "|" + expression + "|" + timezone; }
};

// The zone by IANA name, or nullptr when the system has no such zone.
const date::time_zone* find_zone(const std::string& name);

// The first tick strictly after `after`. In a DST gap a wall time that does not exist fires
// at the moment the clocks jump; a repeated wall time fires once (its first occurrence).
std::optional<SysSeconds> next_tick(const Schedule& s, SysSeconds after);

// Ticks to fire now: those in (last, now] the policy keeps. Skip: only ticks still on time
// (see kOnTimeGrace). Catch-up: every missed tick, but at most catch_up_limit (the latest).
std::vector<SysSeconds> due_ticks(const Schedule& s, SysSeconds last, SysSeconds now);

}  // namespace chartflow::runtime
