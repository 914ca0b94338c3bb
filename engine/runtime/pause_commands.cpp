// The engine's side of pausing: the commands go through the pooled stores as every run command
// does; the steps a resume gives back are claimable at once, so the workers are woken here too
// (the store's NOTIFY reaches the other processes).
#include "runtime/engine.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {

namespace {

void log_pause(const char* what, const Json& target, const Engine::PauseCommand& c) {
  Json fields = target;
  fields["in_flight"] = c.in_flight;
  fields["released"] = c.released;
  Log::info(what, fields);
}

}  // namespace

Engine::CommandResult Engine::pause_workflow(const std::string& workflow, PauseCommand& command,
                                             std::string* message,
                                             const store::Store::BeforeCommand& before) {
  const auto r = pool_.with(
      [&](store::Store& s) { return s.pause_workflow(workflow, command, message, before); });
  if (r == CommandResult::kOk) log_pause("workflow_paused", {{"workflow", workflow}}, command);
  return r;
}

Engine::CommandResult Engine::resume_workflow(const std::string& workflow, PauseCommand& command,
                                              std::string* message,
                                              const store::Store::BeforeCommand& before) {
  const auto r = pool_.with(
      [&](store::Store& s) { return s.resume_workflow(workflow, command, message, before); });
  if (r != CommandResult::kOk) return r;
  log_pause("workflow_resumed", {{"workflow", workflow}}, command);
  if (command.released > 0) wake_workers();
  return r;
}

Engine::CommandResult Engine::pause_run(std::int64_t run_id, PauseCommand& command,
                                        std::string* message,
                                        const store::Store::BeforeCommand& before) {
  const auto r =
      pool_.with([&](store::Store& s) { return s.pause_run(run_id, command, message, before); });
  if (r == CommandResult::kOk) log_pause("run_paused", {{"run", run_id}}, command);
  return r;
}

Engine::CommandResult Engine::resume_run(std::int64_t run_id, PauseCommand& command,
                                         std::string* message,
                                         const store::Store::BeforeCommand& before) {
  const auto r =
      pool_.with([&](store::Store& s) { return s.resume_run(run_id, command, message, before); });
  if (r != CommandResult::kOk) return r;
  log_pause("run_resumed", {{"run", run_id}}, command);
  if (command.released > 0) wake_workers();
  return r;
}

Json Engine::pauses() {
  return pool_.with([](store::Store& s) { return s.pauses(); });
}

}  // namespace chartflow::runtime
