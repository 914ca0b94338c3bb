// Operator commands on one run: signal, cancel and retry, each in one transaction that locks the
// run's row first (the commands on a parked step are in parked_commands.cpp).
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {

std::variant<std::string, Store::CommandResult> lock_run(Store::Impl& impl, pqxx::work& tx,
                                                         std::int64_t run_id,
                                                         const Store::BeforeCommand& before,
                                                         std::string* message) {
  if (before) {
    TxSql sql(tx, &impl);
    if (!before(sql)) return Store::CommandResult::kConflict;
  }
  auto run = tx.exec_params("SELECT status FROM workflow_run WHERE id = $1 FOR UPDATE", run_id);
  if (run.empty()) {
    // An ended run moves to the archive (retention_archive, 0019): commands act on hot runs.
    if (!tx.exec_params("SELECT 1 FROM workflow_run_archive WHERE id = $1", run_id).empty()) {
      *message = "run " + std::to_string(run_id) +
                 " is archived (it ended more than --retention-archive-after ago): reprocess it "
                 "to run it again";
      return Store::CommandResult::kConflict;
    }
    *message = "run " + std::to_string(run_id) + " not found";
    return Store::CommandResult::kNotFound;
  }
  return std::string(run[0][0].c_str());
}

Store::CommandResult Store::signal(std::int64_t run_id, const std::string& name,
                                   const Json& payload, std::string* message,
                                   const BeforeSignal& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    if (before) {
      TxSql sql(tx, impl_.get());
      if (!before(sql)) return CommandResult::kConflict;
    }
    // Locks the run, then wakes the waiting step or keeps the signal (run_signal_deliver,
    // schema/engine/0002_queue.sql).
    const std::string outcome =
        tx.exec_prepared(impl_->prepare("signal", "SELECT run_signal_deliver($1, $2, $3::jsonb)"),
                         run_id, name, payload.dump())[0][0]
            .c_str();
    if (outcome == "not_found") {
      *message = "run " + std::to_string(run_id) + " not found";
      return CommandResult::kNotFound;
    }
    if (outcome.rfind("ended:", 0) == 0) {
      *message =
          "run " + std::to_string(run_id) + " is " + outcome.substr(6) + "; it takes no signals";
      return CommandResult::kConflict;
    }
    *message = outcome;  // "delivered", or "stored" for the step that will wait for it
    tx.commit();
    return CommandResult::kOk;
  });
}

namespace {

// The run's unfinished child workflows, and theirs, parents first.
constexpr const char* kUnfinishedDescendants =
    "WITH RECURSIVE d(id, depth) AS (SELECT $1::bigint, 0 UNION ALL "
    "  SELECT c.id, d.depth + 1 FROM workflow_run c JOIN d ON c.parent_run_id = d.id "
    "  WHERE c.status NOT IN ('succeeded', 'failed', 'cancelled')) "
    "SELECT id FROM d WHERE depth > 0 ORDER BY depth, id";

std::vector<std::int64_t> unfinished_descendants(pqxx::work& tx, std::int64_t run_id) {
  std::vector<std::int64_t> ids;
  for (const auto& row : tx.exec_params(kUnfinishedDescendants, run_id))
    ids.push_back(row[0].as<std::int64_t>());
  return ids;
}

}  // namespace

Store::CommandResult Store::cancel(std::int64_t run_id, std::string* message,
                                   const BeforeCommand& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    if (before) {
      TxSql sql(tx, impl_.get());
      if (!before(sql)) return CommandResult::kConflict;
    }
    // Runs are locked children first, the deepest first, then the run itself: the order a
    // child's end takes them in (its own row, then through child_run_ended in
    // schema/engine/0015_child_runs.sql its parent's step and row). Parents first, a cancel
    // racing a child's end held the parent's step the child's trigger waited for while it
    // waited for the child's row, and PostgreSQL aborted one of them as a deadlock.
    const std::vector<std::int64_t> found = unfinished_descendants(tx, run_id);
    const std::vector<std::int64_t> deepest_first(found.rbegin(), found.rend());
    for (const std::int64_t id : deepest_first)
      tx.exec_params("SELECT 1 FROM workflow_run WHERE id = $1 FOR UPDATE", id);
    auto locked = lock_run(*impl_, tx, run_id, nullptr, message);
    if (auto* refused = std::get_if<CommandResult>(&locked)) return *refused;
    const std::string status = std::get<std::string>(locked);
    if (status == "succeeded" || status == "cancelled") {
      *message = "run " + std::to_string(run_id) + " is already " + status;
      return CommandResult::kConflict;
    }
    // Cancellation passes down to the run's unfinished child workflows, and theirs, read again
    // now that they are locked: one that ended meanwhile keeps its end (and has woken its
    // parent's step, which is cancelled below). A child started since the first read (its
    // parent's step committed before this lock) is locked by its update, after its parent; it
    // has only just started. The parent's steps are cancelled before its children end, so no
    // child's end wakes them (schema/engine/0015_child_runs.sql).
    std::vector<std::int64_t> runs{run_id};
    for (const std::int64_t id : unfinished_descendants(tx, run_id)) runs.push_back(id);
    for (const std::int64_t id : runs) {
      // A step still running loses its lease with this update: its finisher then changes
      // nothing.
      tx.exec_params(
          "UPDATE step_run SET status = 'cancelled', lease_owner = NULL, finished_at = now() "
          "WHERE run_id = $1 AND status IN ('pending', 'ready', 'running', 'retrying', 'waiting', "
          "'parked', 'paused', 'failed')",
          id);
      // A cancelled run is no longer paused: nothing of it is left to hold.
      tx.exec_params("DELETE FROM run_pause WHERE run_id = $1", id);
      tx.exec_params(
          "UPDATE workflow_run SET status = 'cancelled', finished_at = now() WHERE id = $1", id);
      history(tx, id, "cancelled", std::nullopt, std::nullopt, std::nullopt,
              id == run_id ? std::nullopt : std::optional<Json>(Json{{"by_parent", true}}));
    }
    tx.commit();
    *message = "cancelled";
    return CommandResult::kOk;
  });
}

Store::CommandResult Store::retry_run(std::int64_t run_id, std::string* message,
                                      const BeforeCommand& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    auto locked = lock_run(*impl_, tx, run_id, before, message);
    if (auto* refused = std::get_if<CommandResult>(&locked)) return *refused;
    const std::string status = std::get<std::string>(locked);
    if (status != "failed") {
      *message = "run " + std::to_string(run_id) + " is " + status + "; only failed runs retry";
      return CommandResult::kConflict;
    }
    // Only the failed steps run again; succeeded steps keep their checkpointed output.
    auto steps = tx.exec_params(
        // Attempt numbers keep growing (they fence off late finishers); the step gets another
        // full allowance of attempts instead.
        "UPDATE step_run SET status = 'ready', max_attempts = attempt + max_attempts, "
        "run_at = now(), error = NULL, finished_at = NULL "
        "WHERE run_id = $1 AND status = 'failed' RETURNING step_key",
        run_id);
    // A step parked before the run failed still waits for its operator.
    tx.exec_params(
        "UPDATE workflow_run SET finished_at = NULL, error = NULL, status = CASE WHEN EXISTS "
        "(SELECT 1 FROM step_run WHERE run_id = $1 AND status = 'parked') THEN 'parked' "
        "ELSE 'running' END WHERE id = $1",
        run_id);
    for (const auto& s : steps)
      history(tx, run_id, "retried", std::string(s[0].c_str()), std::nullopt, std::nullopt,
              Json{{"by", "operator"}});
    tx.exec(kNotifyWake);
    tx.commit();
    *message = std::to_string(steps.size()) + " step(s) requeued";
    return CommandResult::kOk;
  });
}

}  // namespace chartflow::store
