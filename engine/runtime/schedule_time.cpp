#include "runtime/schedule_time.hpp"

#include <date/tz.h>

#include <deque>

namespace chartflow::runtime {
namespace {

constexpr std::chrono::seconds kMaxLookBack{366L * 24 * 3600};

}  // namespace

const date::time_zone* find_zone(const std::string& name) {
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::optional<SysSeconds> next_tick(const Schedule& s, SysSeconds after) {
  const date::time_zone* zone = s.zone != nullptr ? s.zone : date::locate_zone("UTC");
  // Wall-clock times are carried as sys_seconds for the cron evaluator, which knows no zones.
  auto wall = SysSeconds(zone->to_local(after).time_since_epoch());
  for (int guard = 0; guard < 4; ++guard) {
    auto next = s.cron.next_after(wall);
    if (!next) return std::nullopt;
    const date::local_seconds local(next->time_since_epoch());
    const auto sys = zone->to_sys(local, date::choose::earliest);
    // In the repeated hour after clocks go back, the earliest reading can lie before `after`:
    // that wall time has fired already.
    if (sys > after) return sys;
    wall = *next;
  }
  return std::nullopt;
}

std::vector<SysSeconds> due_ticks(const Schedule& s, SysSeconds last, SysSeconds now) {
  std::deque<SysSeconds> ticks;
  const std::size_t keep = s.catch_up ? static_cast<std::size_t>(s.catch_up_limit) : 2;
  // After a long outage only the last few periods matter: walking a per-second schedule across
  // a month would take seconds. The period is estimated from two ticks around the window start.
  auto start = std::max(last, now - kMaxLookBack);
  if (auto a = next_tick(s, start)) {
    if (auto b = next_tick(s, *a)) {
      const auto window = (*b - *a) * static_cast<long>(2 * (keep + 1));
      if (now - window > start) start = now - window;
    }
  }
  for (auto t = next_tick(s, start); t && *t <= now; t = next_tick(s, *t)) {
    ticks.push_back(*t);
    if (ticks.size() > keep) ticks.pop_front();
  }
  if (s.catch_up || ticks.empty()) return {ticks.begin(), ticks.end()};
  std::vector<SysSeconds> out;
  for (auto t : ticks) {
    const auto period = next_tick(s, t);
    const auto grace =
        period ? std::min<std::chrono::seconds>(kOnTimeGrace, *period - t) : kOnTimeGrace;
    if (now - t < grace) out.push_back(t);
  }
  return out;
}

}  // namespace chartflow::runtime
