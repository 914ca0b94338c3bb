// Fires the schedule triggers of the latest workflows: one thread per engine, asleep until the
// next tick is due (an engine without schedules never queries for them). Every process runs
// one; each tick's event carries the dedup key (workflow, scheduled time), so however many
// processes fire a tick, it starts one run. start()/stop() once; run_once is for tests.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "runtime/schedule_time.hpp"
#include "runtime/workflow_registry.hpp"

namespace chartflow::runtime {

class Engine;

// The tick event's type (a schedule trigger matches only its own workflow's ticks).
inline constexpr const char* kScheduleTickEvent = "schedule.tick";

// Schedules of the latest workflows. Definitions were validated by the loader; a schedule that
// still does not parse or names an unknown zone is left out.
std::vector<Schedule> schedules_of(const std::vector<WorkflowPtr>& workflows);

class Scheduler {
 public:
  explicit Scheduler(Engine& engine) : engine_(engine) {}
  ~Scheduler() { stop(); }

  void start();
  void stop();
  // Fires every tick due at `now` under each schedule's policy; returns when the next is due.
  std::optional<SysSeconds> run_once(SysSeconds now);

 private:
  void loop();

  Engine& engine_;
  // Next tick per schedule key, as last computed; the database holds the truth.
  std::map<std::string, SysSeconds> next_due_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chartflow::runtime
