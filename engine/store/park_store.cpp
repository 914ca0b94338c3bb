// Parking (schema/engine/0007_park.sql): a step whose attempts ran out under on_exhausted: park
// waits for an operator instead of failing its run. Here are the two ways a step parks (its
// worker's batch, or the dispatcher finding its last attempt timed out) and the reads of the
// parked view and gauge; the operator's actions are in parked_commands.cpp.
#include <cstdint>
#include <optional>
#include <string>

#include "store/step_batch.hpp"
#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

// A run is parked while a step of it is; a run already over (failed by another step, or
// cancelled) keeps its status, and the step still waits for its operator.
constexpr const char* kParkRun =
    "UPDATE workflow_run SET status = 'parked' WHERE id = $1 "
    "AND status IN ('pending', 'running', 'waiting')";

}  // namespace

bool BatchImpl::finish_parked(const ClaimedStep& s, const std::string& owner,
                              const std::string& error) {
  QueryTimer timer("finish_parked");
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  // The step will run again if an operator retries it: like a retry, its writes do not stand.
  discard_step_writes();
  auto r = cur().exec_params(
      "UPDATE step_run SET status = 'parked', parked_at = clock_timestamp(), error = $5, "
      "lease_owner = NULL, lease_expires_at = NULL, wake = NULL "
      "WHERE run_id = $1 AND step_key = $2 AND lease_owner = $3 AND attempt = $4 "
      "AND status = 'running'",
      s.run_id, s.step_key, owner, s.attempt, error);
  if (r.affected_rows() == 0) return false;
  history(cur(), s.run_id, "parked", s.step_key, s.attempt, owner, Json{{"error", error}});
  cur().exec_params(kParkRun, s.run_id);
  last_run_status_.clear();  // parked, not ended: no run-end event
  return true;
}

bool Store::park_expired(const Expired& e, const std::string& error) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    auto r = tx.exec_params(
        "UPDATE step_run SET status = 'parked', parked_at = now(), error = $4, "
        "lease_owner = NULL, lease_expires_at = NULL "
        "WHERE run_id = $1 AND step_key = $2 AND attempt = $3 AND status = 'running'",
        e.run_id, e.step_key, e.attempt, error);
    if (r.affected_rows() == 0) return false;
    history(tx, e.run_id, e.timed_out ? "timed_out" : "lease_expired", e.step_key, e.attempt,
            std::nullopt, Json{{"error", error}});
    history(tx, e.run_id, "parked", e.step_key, e.attempt, std::nullopt, Json{{"error", error}});
    tx.exec_params(kParkRun, e.run_id);
    tx.exec_params(
        "INSERT INTO log_record (level, message, workflow, run_id, step, attempt) "
        "SELECT 3, $3, workflow, id, $2, $4 FROM workflow_run WHERE id = $1",
        e.run_id, e.step_key, "step attempt failed: " + error, e.attempt);
    tx.commit();
    return true;
  });
}

std::optional<std::int64_t> Store::run_workflow_version(std::int64_t run_id) {
  return translate(*impl_, [&]() -> std::optional<std::int64_t> {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec_params("SELECT workflow_version_id FROM workflow_run WHERE id = $1", run_id);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<std::int64_t>();
  });
}

Json Store::parked_steps(int limit) {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec_params(
        "SELECT coalesce(jsonb_agg(jsonb_build_object('run_id', s.run_id, 'workflow', w.workflow, "
        "  'step', s.step_key, 'handler', s.handler, 'subject', w.subject, "
        "  'run_status', w.status, 'event_type', e.type, "
        "  'parked_at', " CF_TS("s.parked_at") ", 'attempts', s.attempt, 'error', s.error) "
        "  ORDER BY s.parked_at, s.run_id), '[]')::text, "
        " (SELECT count(*) FROM step_run WHERE status = 'parked') "
        "FROM (SELECT * FROM step_run WHERE status = 'parked' ORDER BY parked_at, run_id "
        "  LIMIT $1) s "
        "JOIN workflow_run w ON w.id = s.run_id JOIN event e ON e.id = w.event_id",
        std::clamp(limit, 1, 1000));
    return Json{{"steps", Json::parse(r[0][0].c_str())}, {"total", r[0][1].as<std::int64_t>()}};
  });
}

Json Store::parked_counts() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    Json out = Json::array();
    for (const auto& row :
         // Elements of a for_each step count under the step's name: one series per step, not
         // per list index.
         tx.exec("SELECT w.workflow, regexp_replace(s.step_key, '\\[[0-9]+\\]$', ''), count(*) "
                 "FROM step_run s "
                 "JOIN workflow_run w ON w.id = s.run_id WHERE s.status = 'parked' GROUP BY 1, 2"))
      out.push_back(
          {{"workflow", row[0].c_str()}, {"step", row[1].c_str()}, {"count", row[2].as<int>()}});
    return out;
  });
}

}  // namespace chartflow::store
