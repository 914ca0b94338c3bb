// Pausing and resuming a workflow or one run (schema/engine/0012_pause.sql). A pause sets aside
// the steps that were waiting to be claimed at once, so the run page shows them paused; steps
// that become claimable later are set aside by the claim itself.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

constexpr const char* kUnfinished = "('pending', 'running', 'waiting', 'parked')";

void run_transaction_before(Store::Impl& impl, pqxx::work& tx, const Store::BeforeCommand& before,
                            bool* refused) {
  *refused = false;
  if (!before) return;
  TxSql sql(tx, &impl);
  *refused = !before(sql);
}

int running_steps_of_workflow(pqxx::work& tx, const std::string& workflow) {
  return tx
      .exec_params(std::string("SELECT count(*) FROM workflow_run r JOIN step_run s ON s.run_id = "
                               "r.id WHERE r.workflow = $1 AND r.status IN ") +
                       kUnfinished + " AND s.status = 'running'",
                   workflow)[0][0]
      .as<int>();
}

}  // namespace

Store::CommandResult Store::pause_workflow(const std::string& workflow, PauseCommand& command,
                                           std::string* message, const BeforeCommand& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    bool refused = false;
    run_transaction_before(*impl_, tx, before, &refused);
    if (refused) return CommandResult::kConflict;
    if (tx.exec_params("SELECT 1 FROM workflow_version WHERE name = $1 LIMIT 1", workflow)
            .empty()) {
      *message = "no workflow named " + workflow;
      return CommandResult::kNotFound;
    }
    auto inserted = tx.exec_params(
        "INSERT INTO workflow_pause (workflow, paused_by, reason) VALUES ($1, $2, $3) "
        "ON CONFLICT (workflow) DO NOTHING RETURNING 1",
        workflow, command.by,
        opt(command.reason.empty() ? std::nullopt : std::optional(command.reason)));
    if (inserted.empty()) {
      *message = "workflow " + workflow + " is already paused";
      return CommandResult::kConflict;
    }
    tx.exec_params(std::string("UPDATE step_run s SET held_status = s.status, status = 'paused' "
                               "FROM workflow_run r WHERE r.workflow = $1 AND r.status IN ") +
                       kUnfinished + " AND s.run_id = r.id AND s.status IN ('ready', 'retrying')",
                   workflow);
    command.in_flight = running_steps_of_workflow(tx, workflow);
    tx.commit();
    *message = "workflow " + workflow + " paused";
    return CommandResult::kOk;
  });
}

Store::CommandResult Store::resume_workflow(const std::string& workflow, PauseCommand& command,
                                            std::string* message, const BeforeCommand& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    bool refused = false;
    run_transaction_before(*impl_, tx, before, &refused);
    if (refused) return CommandResult::kConflict;
    if (tx.exec_params("DELETE FROM workflow_pause WHERE workflow = $1 RETURNING 1", workflow)
            .empty()) {
      *message = "workflow " + workflow + " is not paused";
      return CommandResult::kConflict;
    }
    // A run paused on its own stays paused.
    auto released = tx.exec_params(
        "UPDATE step_run s SET status = s.held_status, held_status = NULL FROM workflow_run r "
        "WHERE s.status = 'paused' AND r.id = s.run_id AND r.workflow = $1 "
        "AND NOT EXISTS (SELECT 1 FROM run_pause p WHERE p.run_id = s.run_id)",
        workflow);
    command.released = static_cast<int>(released.affected_rows());
    if (command.released > 0) tx.exec(kNotifyWake);
    tx.commit();
    *message = "workflow " + workflow + " resumed";
    return CommandResult::kOk;
  });
}

Store::CommandResult Store::pause_run(std::int64_t run_id, PauseCommand& command,
                                      std::string* message, const BeforeCommand& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    auto locked = lock_run(*impl_, tx, run_id, before, message);
    if (auto* refused = std::get_if<CommandResult>(&locked)) return *refused;
    const std::string status = std::get<std::string>(locked);
    if (status == "succeeded" || status == "failed" || status == "cancelled") {
      *message =
          "run " + std::to_string(run_id) + " is " + status + "; only a run in flight pauses";
      return CommandResult::kConflict;
    }
    auto inserted = tx.exec_params(
        "INSERT INTO run_pause (run_id, paused_by, reason) VALUES ($1, $2, $3) "
        "ON CONFLICT (run_id) DO NOTHING RETURNING 1",
        run_id, command.by,
        opt(command.reason.empty() ? std::nullopt : std::optional(command.reason)));
    if (inserted.empty()) {
      *message = "run " + std::to_string(run_id) + " is already paused";
      return CommandResult::kConflict;
    }
    tx.exec_params(
        "UPDATE step_run SET held_status = status, status = 'paused' "
        "WHERE run_id = $1 AND status IN ('ready', 'retrying')",
        run_id);
    command.in_flight =
        tx.exec_params("SELECT count(*) FROM step_run WHERE run_id = $1 AND status = 'running'",
                       run_id)[0][0]
            .as<int>();
    Json detail = {{"by", command.by}};
    if (!command.reason.empty()) detail["reason"] = command.reason;
    history(tx, run_id, "paused", std::nullopt, std::nullopt, std::nullopt, detail);
    tx.commit();
    *message = "run " + std::to_string(run_id) + " paused";
    return CommandResult::kOk;
  });
}

Store::CommandResult Store::resume_run(std::int64_t run_id, PauseCommand& command,
                                       std::string* message, const BeforeCommand& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    auto locked = lock_run(*impl_, tx, run_id, before, message);
    if (auto* refused = std::get_if<CommandResult>(&locked)) return *refused;
    if (tx.exec_params("DELETE FROM run_pause WHERE run_id = $1 RETURNING 1", run_id).empty()) {
      *message = "run " + std::to_string(run_id) + " is not paused";
      return CommandResult::kConflict;
    }
    // While its workflow is paused the run's steps stay set aside: resuming the run lifts only
    // its own pause.
    auto released = tx.exec_params(
        "UPDATE step_run s SET status = s.held_status, held_status = NULL "
        "WHERE s.run_id = $1 AND s.status = 'paused' AND NOT EXISTS (SELECT 1 FROM "
        "workflow_pause p JOIN workflow_run r ON r.workflow = p.workflow WHERE r.id = $1)",
        run_id);
    command.released = static_cast<int>(released.affected_rows());
    history(tx, run_id, "resumed", std::nullopt, std::nullopt, std::nullopt,
            Json{{"by", command.by}});
    if (command.released > 0) tx.exec(kNotifyWake);
    tx.commit();
    *message = "run " + std::to_string(run_id) + " resumed";
    return CommandResult::kOk;
  });
}

Json Store::pauses() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec(
        std::string(
            "SELECT coalesce(jsonb_agg(jsonb_build_object('workflow', p.workflow, "
            "  'paused_at', " CF_TS(
                "p.paused_at") ", 'paused_by', p.paused_by, "
                               "  'reason', p.reason, 'queued_runs', q.runs, 'queued_steps', "
                               "q.queued, "
                               "  'running_steps', q.running) ORDER BY p.workflow), '[]')::text, "
                               " (SELECT count(*) FROM run_pause rp JOIN workflow_run r ON r.id = "
                               "rp.run_id "
                               "  WHERE r.status IN ") +
        kUnfinished +
        ") "
        "FROM workflow_pause p, LATERAL (SELECT "
        "  count(DISTINCT s.run_id) FILTER (WHERE s.status IN ('paused', 'ready', 'retrying')) "
        "    AS runs, "
        "  count(*) FILTER (WHERE s.status IN ('paused', 'ready', 'retrying')) AS queued, "
        "  count(*) FILTER (WHERE s.status = 'running') AS running "
        "  FROM workflow_run r JOIN step_run s ON s.run_id = r.id "
        "  WHERE r.workflow = p.workflow AND r.status IN " +
        kUnfinished + ") q");
    return Json{{"workflows", Json::parse(r[0][0].c_str())},
                {"paused_runs", r[0][1].as<std::int64_t>()}};
  });
}

}  // namespace chartflow::store
