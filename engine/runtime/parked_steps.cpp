// The engine's side of parked steps: an operator's retry, skip or fail, and the reads of the
// parked view and gauge. A step parks in Engine::execute or Engine::handle_expired.
#include "core/for_each.hpp"
#include "runtime/engine.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {

Engine::CommandResult Engine::act_on_parked(std::int64_t run_id, const std::string& step,
                                            store::Store::ParkedAction action,
                                            const std::string& reason, std::string* message,
                                            const store::Store::BeforeCommand& before) {
  store::Store::ParkedCommand command;
  command.step = step;
  command.action = action;
  command.reason = reason;
  command.on_succeeded = run_end_plan(store::kRunSucceededEvent);
  command.on_failed = run_end_plan(store::kRunFailedEvent);
  const auto result = pool_.with([&](store::Store& s) {
    // A retry starts the budget afresh, as the run's own version of the workflow sets it (a
    // budget stretched by lost leases does not carry over).
    if (action == store::Store::ParkedAction::kRetry) {
      if (auto version = s.run_workflow_version(run_id)) {
        const WorkflowPtr wf = workflows_->by_version(*version, s);
        const core::Step* def = wf ? core::definition_of(wf->workflow, step) : nullptr;
        command.attempts = def ? def->retry.max_attempts : core::RetryPolicy{}.max_attempts;
      }
    }
    return s.act_on_parked(run_id, command, message, before);
  });
  if (result != CommandResult::kOk) return result;
  static constexpr const char* kNames[] = {"retry", "skip", "fail"};
  Log::info("parked_step_resolved",
            {{"run", run_id}, {"step", step}, {"action", kNames[static_cast<int>(action)]}});
  if (!command.ended.empty() && hooks_.run_finished)
    hooks_.run_finished(command.workflow, command.ended);
  if (action != store::Store::ParkedAction::kFail) wake_workers();
  return result;
}

Json Engine::parked_steps(int limit) {
  return pool_.with([&](store::Store& s) { return s.parked_steps(limit); });
}

Json Engine::parked_counts() {
  return pool_.with([](store::Store& s) { return s.parked_counts(); });
}

}  // namespace chartflow::runtime
