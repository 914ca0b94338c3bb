#include "store/step_batch.hpp"

#include <memory>

namespace chartflow::store {
namespace {

// step_commit raises this when a step that wrote has lost its lease (step_commit,
// schema/engine/0002_queue.sql).
constexpr const char* kLeaseLostState = "CFL01";

// A PostgreSQL array literal of ids: {1,2,3}.
std::string id_array(const std::vector<std::int64_t>& ids) {
  std::string out = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "}";
}

}  // namespace

BatchImpl::~BatchImpl() {
  if (!open_) return;
  try {
    tx_.exec("ROLLBACK");
  } catch (...) {
    // The connection is gone, and the transaction with it.
  }
}

Sql& BatchImpl::sql() {
  if (!in_step_) {
    CallDeadline deadline(impl_.fd(), impl_.call_timeout);
    if (!open_) {
      tx_.exec("BEGIN");
      open_ = true;
    } else if (dirty_) {
      // The previous step's savepoint is released in the same round trip as this one opens.
      tx_.exec(release_pending_ ? "RELEASE SAVEPOINT step; SAVEPOINT step" : "SAVEPOINT step");
      release_pending_ = false;
      step_savepoint_ = true;
    }
    in_step_ = true;
  }
  return sql_;
}

void BatchImpl::discard_step_writes() {
  if (!in_step_) return;
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  if (step_savepoint_) {
    tx_.exec("ROLLBACK TO SAVEPOINT step");
  } else {
    // Nothing before this step's writes needs keeping.
    tx_.exec("ROLLBACK");
    open_ = false;
  }
  in_step_ = false;
  step_savepoint_ = false;
}

bool BatchImpl::finish_done(const ClaimedStep& s, const std::string& /*owner*/, const Json& output,
                            bool skipped) {
  // Finished with the batch's other steps in one statement at commit. One that wrote and turns
  // out to have lost its lease by then fails the commit (step_commit raises), so its writes
  // never stand without its completion.
  last_run_status_.clear();
  deferred_.push_back({{"run_id", s.run_id},
                       {"step_key", s.step_key},
                       {"attempt", s.attempt},
                       {"status", skipped ? "skipped" : "succeeded"},
                       {"output", output},
                       {"wrote", in_step_}});
  keep_step_writes();
  return true;
}

bool BatchImpl::finish_retry(const ClaimedStep& s, const std::string& owner,
                             std::chrono::milliseconds after, const std::string& error) {
  QueryTimer timer("finish_retry");
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  discard_step_writes();
  auto r = cur().exec_params(
      "UPDATE step_run SET status = 'retrying', run_at = now() + $5 * interval '1 millisecond',"
      " error = $6, lease_owner = NULL, wake = NULL "
      "WHERE run_id = $1 AND step_key = $2 AND lease_owner = $3 AND attempt = $4 "
      "AND status = 'running'",
      s.run_id, s.step_key, owner, s.attempt, static_cast<std::int64_t>(after.count()), error);
  if (r.affected_rows() == 0) return false;
  history(cur(), s.run_id, "retried", s.step_key, s.attempt, owner,
          Json{{"error", error}, {"delay_ms", after.count()}});
  return true;
}

bool BatchImpl::finish_failed(const ClaimedStep& s, const std::string& owner,
                              const std::string& error) {
  QueryTimer timer("finish_failed");
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  auto r = cur().exec_params(
      "UPDATE step_run SET status = 'failed', error = $5, finished_at = clock_timestamp(), "
      "lease_owner = NULL, wake = NULL "
      "WHERE run_id = $1 AND step_key = $2 AND lease_owner = $3 AND attempt = $4 "
      "AND status = 'running'",
      s.run_id, s.step_key, owner, s.attempt, error);
  if (r.affected_rows() == 0) {
    discard_step_writes();
    return false;
  }
  keep_step_writes();
  history(cur(), s.run_id, "failed", s.step_key, s.attempt, owner, Json{{"error", error}});
  auto run = cur().exec_params(
      "UPDATE workflow_run SET status = 'failed', finished_at = clock_timestamp(), error = $2 "
      "WHERE id = $1 AND status IN ('running', 'waiting', 'pending', 'parked') RETURNING id",
      s.run_id, "step " + s.step_key + " failed: " + error);
  last_run_status_ = run.empty() ? "" : "failed";
  if (!run.empty()) {
    failed_run_ids_.push_back(s.run_id);
    history(cur(), s.run_id, "failed", std::nullopt, std::nullopt, owner,
            Json{{"step", s.step_key}});
  }
  return true;
}

bool BatchImpl::finish_wait(const ClaimedStep& s, const std::string& owner,
                            const std::optional<std::string>& signal,
                            const std::optional<TimePoint>& until) {
  QueryTimer timer("finish_wait");
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  std::optional<std::string> until_ms;
  if (until)
    until_ms = std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(until->time_since_epoch()).count());
  // step_wait() in schema/engine/0002_queue.sql; takes a signal that arrived before the step
  // waited.
  auto r = cur().exec_prepared(
      impl_.prepare("step_wait", "SELECT step_wait($1, $2, $3, $4, $5, $6::bigint)"), s.run_id,
      s.step_key, owner, s.attempt, opt(signal), opt(until_ms));
  const std::string outcome = r[0][0].c_str();
  if (outcome == "lost") {
    discard_step_writes();  // if the lease was lost, the handler's writes go too
    return false;
  }
  keep_step_writes();
  if (outcome == "waiting") waiting_runs_.push_back(s.run_id);
  return true;
}

void BatchImpl::emit_run_end(std::int64_t run_id, const Store::PlanRuns& plan) {
  keep_step_writes();
  if (store::emit_run_end(impl_, cur(), run_id, plan)) notify_ = true;
}

std::vector<ClaimedStep> BatchImpl::commit(const std::string& owner, int claim_next,
                                           std::chrono::milliseconds lease, bool include_keyed) {
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  QueryTimer timer("batch_commit");
  keep_step_writes();
  // The run-end events of the runs these finishes end commit with them.
  if (succeeded_plan_ && !deferred_.empty()) cur();
  std::vector<ClaimedStep> next;
  if (!deferred_.empty() || !waiting_runs_.empty() || !logs_.empty() || claim_next > 0) {
    // Claiming the next steps (often the ones this batch just released) in the same commit
    // halves the durable commits per step.
    static const std::string kStepCommit =
        "SELECT step_commit($1, $2::jsonb, $3::bigint[], $4::jsonb, $5, $6, $7)";
    pqxx::result r;
    try {
      r = tx_.exec_prepared(impl_.prepare("step_commit", kStepCommit), owner, deferred_.dump(),
                            id_array(waiting_runs_), log_records_json(logs_).dump(), claim_next,
                            static_cast<std::int64_t>(lease.count()), include_keyed);
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() != kLeaseLostState) throw;
      tx_.exec("ROLLBACK");
      open_ = false;
      throw LeaseLost(lost_steps(owner));
    }
    deferred_ = Json::array();
    waiting_runs_.clear();
    logs_.clear();
    const Json result = Json::parse(r[0][0].c_str());
    promoted_ += result.at("promoted").get<int>();
    for (const auto& wf : result.at("succeeded")) succeeded_runs_.push_back(wf.get<std::string>());
    for (const auto& id : result.at("succeeded_ids"))
      succeeded_run_ids_.push_back(id.get<std::int64_t>());
    if (succeeded_plan_)
      for (const auto& id : result.at("succeeded_ids"))
        if (store::emit_run_end(impl_, tx_, id.get<std::int64_t>(), succeeded_plan_))
          notify_ = true;
    next = read_claimed(result.at("claimed"));
  }
  if (notify_) cur().exec(kNotifyWake);
  if (open_) {
    // A transaction an error had aborted cannot get here: every path to COMMIT sends a
    // statement after the steps' own, which would have failed first.
    tx_.exec("COMMIT");
    open_ = false;
  }
  return next;
}

pqxx::transaction_base& BatchImpl::cur() {
  if (!open_) {
    tx_.exec("BEGIN");
    open_ = true;
  }
  if (!in_step_) dirty_ = true;
  return tx_;
}

std::vector<std::pair<std::int64_t, std::string>> BatchImpl::lost_steps(const std::string& owner) {
  auto r = tx_.exec_params(
      "SELECT i.run_id, i.step_key FROM jsonb_to_recordset($1::jsonb) AS i(run_id bigint, "
      "step_key text, attempt int, wrote boolean) WHERE i.wrote AND NOT EXISTS (SELECT 1 FROM "
      "step_run s WHERE s.run_id = i.run_id AND s.step_key = i.step_key AND s.lease_owner = $2 "
      "AND s.attempt = i.attempt AND s.status = 'running')",
      deferred_.dump(), owner);
  std::vector<std::pair<std::int64_t, std::string>> out;
  for (const auto& row : r) out.emplace_back(row[0].as<std::int64_t>(), row[1].c_str());
  return out;
}

void BatchImpl::keep_step_writes() {
  if (!in_step_) return;
  if (step_savepoint_) release_pending_ = true;
  in_step_ = false;
  step_savepoint_ = false;
  dirty_ = true;
}

std::unique_ptr<StepBatch> Store::begin_batch() {
  return translate(*impl_, [&] { return std::make_unique<BatchImpl>(*impl_); });
}

}  // namespace chartflow::store
