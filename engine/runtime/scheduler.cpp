#include "runtime/scheduler.hpp"

#include <fmt/format.h>

#include "runtime/engine.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {
namespace {

// New or changed workflows are noticed within this; it costs no query.
constexpr Millis kMaxSleep{1000};

std::string rfc3339(SysSeconds t) {
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd(day);
  const std::chrono::hh_mm_ss hms(t - day);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

SysSeconds to_seconds(TimePoint t) { return std::chrono::floor<std::chrono::seconds>(t); }

}  // namespace

std::vector<Schedule> schedules_of(const std::vector<WorkflowPtr>& workflows) {
  std::vector<Schedule> out;
  for (const auto& wf : workflows) {
    for (const auto& t : wf->workflow.triggers) {
      if (t.event != kScheduleTickEvent || !t.extra.contains("schedule")) continue;
      Schedule s;
      s.workflow = wf->workflow.name;
      s.expression = t.extra.at("schedule").get<std::string>();
      s.timezone = t.extra.value("timezone", std::string("UTC"));
      s.catch_up = t.extra.value("catch_up", false);
      s.catch_up_limit = t.extra.value("catch_up_limit", kDefaultCatchUpLimit);
      std::string error;
      auto cron = core::Cron::parse(s.expression, &error);
      s.zone = find_zone(s.timezone);
      if (!cron || s.zone == nullptr) continue;
      s.cron = *cron;
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::optional<SysSeconds> Scheduler::run_once(SysSeconds now) {
  std::optional<SysSeconds> earliest;
  for (const auto& s : schedules_of(engine_.workflows().latest())) {
    const std::string key = s.state_key();
    auto known = next_due_.find(key);
    if (known == next_due_.end() || known->second <= now) {
      // Read the shared state only when a tick may be due: another process may have fired it.
      const auto last = to_seconds(engine_.pool_.with(
          [&](store::Store& st) { return st.schedule_last_tick(key, s.workflow, now); }));
      std::vector<store::EventInput> events;
      for (auto tick : due_ticks(s, last, now)) {
        store::EventInput ev;
        ev.type = kScheduleTickEvent;
        ev.source = "schedule";
        ev.dedup_key = s.workflow + "@" + rfc3339(tick);
        ev.body = {{"workflow", s.workflow},
                   {"schedule", s.expression},
                   {"timezone", s.timezone},
                   {"scheduled_at", rfc3339(tick)}};
        events.push_back(std::move(ev));
      }
      if (!events.empty() || last < now) {
        auto results = engine_.ingest_with([&](store::Store& st, const store::Store::PlanRuns& p) {
          return st.fire_ticks(key, events, now, p);
        });
        for (std::size_t i = 0; i < results.size(); ++i)
          if (!results[i].duplicate)
            Log::info("schedule_fired", {{"workflow", s.workflow},
                                         {"scheduled_at", events[i].body.at("scheduled_at")},
                                         {"runs", results[i].run_ids.size()}});
      }
      auto next = next_tick(s, std::max(now, last));
      if (!next) continue;
      known = next_due_.insert_or_assign(key, *next).first;
    }
    if (!earliest || known->second < *earliest) earliest = known->second;
  }
  return earliest;
}

void Scheduler::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::loop() {
  while (true) {
    Millis sleep = kMaxSleep;
    try {
      const auto now = to_seconds(Clock::now());
      if (auto next = run_once(now)) {
        // Wake right at the tick: sleeping past it into the next second is the only latency.
        const auto until = std::chrono::duration_cast<Millis>(*next - Clock::now());
        sleep = std::clamp(until, Millis(1), kMaxSleep);
      }
    } catch (const std::exception& e) {
      Log::error("scheduler_error", {{"error", e.what()}});
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, sleep, [&] { return stopping_; })) return;
  }
}

}  // namespace chartflow::runtime
