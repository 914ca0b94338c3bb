// An operator's decision about a parked step: retry, skip or fail (schema/engine/0007_park.sql),
// in one transaction that locks the run's row first, as every run command does.
#include <cstdint>
#include <string>
#include <variant>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

using ParkedAction = Store::ParkedAction;

// After a retry or skip: the run is parked while another step still is, else running again. A
// run that ended meanwhile (another step failed it) keeps its status.
void unpark_run(pqxx::work& tx, std::int64_t run_id) {
  tx.exec_params(
      "UPDATE workflow_run SET status = CASE WHEN EXISTS (SELECT 1 FROM step_run WHERE "
      "run_id = $1 AND status = 'parked') THEN 'parked' ELSE 'running' END "
      "WHERE id = $1 AND status = 'parked'",
      run_id);
}

void retry(pqxx::work& tx, std::int64_t run_id, const Store::ParkedCommand& c) {
  // Attempt numbers keep growing (they fence off late finishers); the budget starts afresh.
  tx.exec_params(
      "UPDATE step_run SET status = 'ready', run_at = now(), max_attempts = attempt + $3, "
      "parked_at = NULL, error = NULL, finished_at = NULL WHERE run_id = $1 AND step_key = $2",
      run_id, c.step, c.attempts);
  history(tx, run_id, "retried", c.step, std::nullopt, std::nullopt,
          Json{{"by", "operator"}, {"attempts", c.attempts}});
  unpark_run(tx, run_id);
  tx.exec(kNotifyWake);
}

// As a finished step does in step_commit: its dependents count it done, and the run one step
// closer to its end.
void skip(Store::Impl& impl, pqxx::work& tx, std::int64_t run_id, Store::ParkedCommand& c) {
  tx.exec_params(
      "UPDATE step_run SET status = 'skipped', skip_reason = $3, parked_at = NULL, "
      "finished_at = now() WHERE run_id = $1 AND step_key = $2",
      run_id, c.step, c.reason);
  history(tx, run_id, "skipped", c.step, std::nullopt, std::nullopt,
          Json{{"by", "operator"}, {"reason", c.reason}});
  tx.exec_params(
      "UPDATE step_run SET pending_needs = pending_needs - 1, run_at = now(), "
      "status = CASE WHEN pending_needs = 1 THEN 'ready' ELSE status END "
      "WHERE run_id = $1 AND status = 'pending' AND needs ? $2",
      run_id, c.step);
  auto run = tx.exec_params(
      "UPDATE workflow_run SET remaining_steps = remaining_steps - 1, "
      "status = CASE WHEN remaining_steps = 1 AND status = 'parked' THEN 'succeeded' "
      "ELSE status END, "
      "finished_at = CASE WHEN remaining_steps = 1 AND status = 'parked' THEN now() "
      "ELSE finished_at END WHERE id = $1 RETURNING status, remaining_steps, workflow",
      run_id);
  if (std::string(run[0][0].c_str()) == "succeeded" && run[0][1].as<int>() == 0) {
    history(tx, run_id, "succeeded", std::nullopt, std::nullopt, std::nullopt, std::nullopt);
    c.ended = "succeeded";
    c.workflow = run[0][2].c_str();
    if (c.on_succeeded) emit_run_end(impl, tx, run_id, c.on_succeeded);
  } else {
    unpark_run(tx, run_id);
  }
  tx.exec(kNotifyWake);
}

// As exhaustion without park does (StepBatch::finish_failed): the step fails, and its run with
// it, emitting the run-end event.
void fail(Store::Impl& impl, pqxx::work& tx, std::int64_t run_id, Store::ParkedCommand& c) {
  auto step = tx.exec_params(
      "UPDATE step_run SET status = 'failed', parked_at = NULL, finished_at = now() "
      "WHERE run_id = $1 AND step_key = $2 RETURNING coalesce(error, '')",
      run_id, c.step);
  const std::string error = step[0][0].c_str();
  history(tx, run_id, "failed", c.step, std::nullopt, std::nullopt,
          Json{{"by", "operator"}, {"error", error}});
  auto run = tx.exec_params(
      "UPDATE workflow_run SET status = 'failed', finished_at = now(), error = $2 "
      "WHERE id = $1 AND status IN ('pending', 'running', 'waiting', 'parked') "
      "RETURNING workflow",
      run_id, "step " + c.step + " failed: " + error);
  if (run.empty()) return;
  history(tx, run_id, "failed", std::nullopt, std::nullopt, std::nullopt, Json{{"step", c.step}});
  c.ended = "failed";
  c.workflow = run[0][0].c_str();
  if (c.on_failed && emit_run_end(impl, tx, run_id, c.on_failed)) tx.exec(kNotifyWake);
}

}  // namespace

Store::CommandResult Store::act_on_parked(std::int64_t run_id, ParkedCommand& command,
                                          std::string* message, const BeforeCommand& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    command.ended.clear();
    auto locked = lock_run(*impl_, tx, run_id, before, message);
    if (auto* refused = std::get_if<CommandResult>(&locked)) return *refused;
    auto step =
        tx.exec_params("SELECT status FROM step_run WHERE run_id = $1 AND step_key = $2 FOR UPDATE",
                       run_id, command.step);
    if (step.empty()) {
      *message = "run " + std::to_string(run_id) + " has no step " + command.step;
      return CommandResult::kNotFound;
    }
    const std::string status = step[0][0].c_str();
    if (status != "parked") {
      *message = "step " + command.step + " of run " + std::to_string(run_id) + " is " + status +
                 "; only a parked step can be retried, skipped or failed here";
      return CommandResult::kConflict;
    }
    switch (command.action) {
      case ParkedAction::kRetry:
        retry(tx, run_id, command);
        *message = "step " + command.step + " requeued";
        break;
      case ParkedAction::kSkip:
        skip(*impl_, tx, run_id, command);
        *message = "step " + command.step + " skipped";
        break;
      case ParkedAction::kFail:
        fail(*impl_, tx, run_id, command);
        *message = "step " + command.step + " failed";
        break;
    }
    tx.commit();
    return CommandResult::kOk;
  });
}

}  // namespace chartflow::store
