// Moving a run to another version of its workflow (issue #17 item 6; its history type
// 'migrated' is in schema/engine/0012_pause.sql). The plan is core::plan_run_migration's, made on
// the rows this transaction read; moving applies it in the same transaction, with the run and its
// steps locked, so what a dry run answered is what the move does unless the run changed between.
#include <map>
#include <string>
#include <variant>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

using core::PlannedStep;

bool ended(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled";
}

core::RunMigrationPlan refused(std::string reason) {
  core::RunMigrationPlan plan;
  plan.reason = std::move(reason);
  return plan;
}

std::vector<core::RunStepState> read_steps(pqxx::transaction_base& tx, std::int64_t run_id,
                                           bool lock) {
  std::vector<core::RunStepState> steps;
  // The claim and the timers take step rows with SKIP LOCKED or wait for them: locked here,
  // none of them starts or wakes a step of this run until the move commits.
  const auto rows = tx.exec_params(std::string("SELECT step_key, status, held_status FROM step_run "
                                               "WHERE run_id = $1 ORDER BY step_key") +
                                       (lock ? " FOR UPDATE" : ""),
                                   run_id);
  for (const auto& r : rows) {
    core::RunStepState s{r[0].c_str(), r[1].c_str(), std::nullopt};
    if (!r[2].is_null()) s.held_status = r[2].c_str();
    steps.push_back(std::move(s));
  }
  return steps;
}

// Why the run cannot move whatever its steps say, or "".
std::string run_refusal(const std::string& status, std::int64_t version_id,
                        const Store::RunMove& move) {
  if (ended(status)) return "the run has ended (" + status + ")";
  if (version_id == move.to_id) return "the run is at " + move.to_label + " already";
  if (version_id != move.from_id) return "the run is at another version";
  return "";
}

// A child workflow's end wakes its parent's step by name, at the version the parent is at:
// moving the parent under a child still in flight would race that wake-up, as moving it under
// a running step would race the step's finish.
std::string children_refusal(pqxx::transaction_base& tx, std::int64_t run_id) {
  const auto r = tx.exec_params(
      "SELECT parent_step FROM workflow_run WHERE parent_run_id = $1 "
      "AND status NOT IN ('succeeded', 'failed', 'cancelled') ORDER BY id LIMIT 1",
      run_id);
  if (r.empty()) return "";
  return "step " + std::string(r[0][0].c_str()) +
         " waits for its child workflow; move the run once the child has ended";
}

void apply(pqxx::work& tx, std::int64_t run_id, const Store::RunMove& move,
           const core::RunMigrationPlan& plan) {
  const auto body = tx.exec_params1(
      "SELECT e.body FROM event e JOIN workflow_run r ON r.event_id = e.id WHERE r.id = $1",
      run_id);
  std::map<std::string, StepPlan> defs;
  for (auto& d : move.steps_for(Json::parse(body[0].c_str()))) defs[d.step_key] = std::move(d);
  Json renamed = Json::array(), updated = Json::array(), added = Json::array();
  for (const auto& p : plan.steps) {
    if (p.kind != PlannedStep::Kind::kAdded && p.from != p.key)
      renamed.push_back({{"from_key", p.from}, {"key", p.key}});
    if (p.kind == PlannedStep::Kind::kKept) continue;
    const StepPlan& d = defs.at(p.key);
    Json row = {{"key", p.key},
                {"handler", d.handler},
                {"needs", d.needs},
                {"pending_needs", p.pending_needs},
                {"status", p.status},
                {"max_attempts", d.max_attempts},
                {"timeout_ms", d.timeout_ms}};
    if (d.concurrency_key) row["concurrency_key"] = *d.concurrency_key;
    if (d.concurrency_limit) row["concurrency_limit"] = *d.concurrency_limit;
    (p.kind == PlannedStep::Kind::kAdded ? added : updated).push_back(std::move(row));
  }
  if (!plan.dropped.empty())
    tx.exec_params(
        "DELETE FROM step_run WHERE run_id = $1 AND step_key IN "
        "(SELECT jsonb_array_elements_text($2::jsonb))",
        run_id, Json(plan.dropped).dump());
  if (!renamed.empty()) {
    // Through names no step can have ('~' is not allowed in one), so that renames which swap
    // two names never meet the primary key halfway.
    tx.exec_params(
        "UPDATE step_run s SET step_key = '~' || x.key FROM jsonb_to_recordset($2::jsonb) AS "
        "x(from_key text, key text) WHERE s.run_id = $1 AND s.step_key = x.from_key",
        run_id, renamed.dump());
    tx.exec_params(
        "UPDATE step_run SET step_key = substr(step_key, 2) WHERE run_id = $1 AND "
        "step_key LIKE '~%'",
        run_id);
  }
  // Steps that have not started take the new definition. One that ran before (an operator's
  // retry made it ready again) keeps its attempt numbers, which fence off late finishers, and
  // gets the new budget on top.
  if (!updated.empty())
    tx.exec_params(
        "UPDATE step_run s SET handler = x.handler, needs = x.needs, max_attempts = s.attempt + "
        "x.max_attempts, timeout_ms = x.timeout_ms, concurrency_key = x.concurrency_key, "
        "concurrency_limit = x.concurrency_limit, pending_needs = x.pending_needs, "
        "status = x.status, held_status = CASE WHEN x.status = 'paused' THEN s.held_status END, "
        "run_at = CASE WHEN x.status <> s.status THEN now() ELSE s.run_at END "
        "FROM jsonb_to_recordset($2::jsonb) AS x(key text, handler text, needs jsonb, "
        "pending_needs int, status text, max_attempts int, timeout_ms int, concurrency_key text, "
        "concurrency_limit int) WHERE s.run_id = $1 AND s.step_key = x.key",
        run_id, updated.dump());
  if (!added.empty())
    tx.exec_params(
        "INSERT INTO step_run (run_id, step_key, handler, status, needs, pending_needs, "
        "max_attempts, timeout_ms, concurrency_key, concurrency_limit) SELECT $1, x.key, "
        "x.handler, x.status, x.needs, x.pending_needs, x.max_attempts, x.timeout_ms, "
        "x.concurrency_key, x.concurrency_limit FROM jsonb_to_recordset($2::jsonb) AS "
        "x(key text, handler text, needs jsonb, pending_needs int, status text, max_attempts int, "
        "timeout_ms int, concurrency_key text, concurrency_limit int)",
        run_id, added.dump());
  tx.exec_params(
      "UPDATE workflow_run SET workflow_version_id = $2, remaining_steps = $3 WHERE id = $1",
      run_id, move.to_id, plan.remaining_steps);
  Json detail = move.detail;
  detail["renamed"] = renamed;
  detail["added"] = Json::array();
  for (const auto& a : added) detail["added"].push_back(a.at("key"));
  detail["dropped"] = plan.dropped;
  detail["next"] = plan.next;
  history(tx, run_id, "migrated", std::nullopt, std::nullopt, std::nullopt, detail);
  if (!plan.next.empty()) tx.exec(kNotifyWake);
}

}  // namespace

std::optional<WorkflowVersion> Store::workflow_version_of(const std::string& name, int version) {
  return translate(*impl_, [&]() -> std::optional<WorkflowVersion> {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec_params(
        "SELECT id, content_hash, definition FROM workflow_version WHERE name = $1 AND "
        "version = $2",
        name, version);
    if (r.empty()) return std::nullopt;
    WorkflowVersion v;
    v.id = r[0][0].as<std::int64_t>();
    v.name = name;
    v.version = version;
    v.content_hash = r[0][1].c_str();
    v.definition = Json::parse(r[0][2].c_str());
    return v;
  });
}

std::vector<std::int64_t> Store::unended_runs_at(const std::string& workflow,
                                                 std::int64_t version_id, std::int64_t after,
                                                 int limit) {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    std::vector<std::int64_t> ids;
    // workflow_run_workflow_status_idx answers each status by id.
    for (const auto& r :
         tx.exec_params("SELECT id FROM workflow_run WHERE workflow = $1 AND status IN ('pending', "
                        "'running', 'waiting', 'parked') AND workflow_version_id = $2 AND id > $3 "
                        "ORDER BY id LIMIT $4",
                        workflow, version_id, after, limit))
      ids.push_back(r[0].as<std::int64_t>());
    return ids;
  });
}

core::RunMigrationPlan Store::move_run(std::int64_t run_id, const RunMove& move,
                                       const BeforeCommand& before) {
  return translate(*impl_, [&] {
    if (move.dry_run) {
      pqxx::read_transaction tx(impl_->conn);
      const auto run = tx.exec_params(
          "SELECT status, workflow_version_id FROM workflow_run WHERE id = $1", run_id);
      if (run.empty()) return refused("run " + std::to_string(run_id) + " not found");
      if (auto why = run_refusal(run[0][0].c_str(), run[0][1].as<std::int64_t>(), move);
          !why.empty())
        return refused(why);
      if (auto why = children_refusal(tx, run_id); !why.empty()) return refused(why);
      return core::plan_run_migration(read_steps(tx, run_id, false), move.target, move.renames,
                                      move.to_label);
    }
    pqxx::work tx(impl_->conn);
    std::string message;
    auto locked = lock_run(*impl_, tx, run_id, before, &message);
    if (std::holds_alternative<CommandResult>(locked))
      return refused(message.empty() ? "refused" : message);
    const auto version =
        tx.exec_params1("SELECT workflow_version_id FROM workflow_run WHERE id = $1", run_id);
    if (auto why = run_refusal(std::get<std::string>(locked), version[0].as<std::int64_t>(), move);
        !why.empty())
      return refused(why);
    if (auto why = children_refusal(tx, run_id); !why.empty()) return refused(why);
    auto plan = core::plan_run_migration(read_steps(tx, run_id, true), move.target, move.renames,
                                         move.to_label);
    if (!plan.movable) return plan;  // rolled back, `before`'s writes with it
    apply(tx, run_id, move, plan);
    tx.commit();
    return plan;
  });
}

}  // namespace chartflow::store
