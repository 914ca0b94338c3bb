// A child workflow step starts its child run, in the batch's transaction: the step's lease is
// checked first (a lost step starts nothing), then the child's event and run are stored and
// marked as this step attempt's child, and the step waits. All of it commits with the batch or
// not at all, so a crash never leaves a child without a waiting parent step, nor a waiting step
// without its child; the event's dedup key and workflow_run_parent_idx each refuse a second
// child for the same attempt. The child's end wakes the step (schema/engine/0015_child_runs.sql).
#include "store/step_batch.hpp"

namespace chartflow::store {

bool BatchImpl::finish_child_started(const ClaimedStep& s, const std::string& owner,
                                     const EventInput& child, const Store::PlanRuns& plan,
                                     std::int64_t& child_run_id) {
  QueryTimer timer("finish_child_started");
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  // The attempt is given back, as a wait gives it: waiting for the child is not a try.
  auto r = cur().exec_params(
      "UPDATE step_run SET status = 'waiting', attempt = attempt - 1, lease_owner = NULL, "
      "  wait_signal = NULL, wait_until = NULL, wake = NULL "
      "WHERE run_id = $1 AND step_key = $2 AND lease_owner = $3 AND attempt = $4 "
      "  AND status = 'running' "
      "RETURNING (SELECT subject FROM workflow_run WHERE id = $1)",
      s.run_id, s.step_key, owner, s.attempt);
  if (r.empty()) {
    discard_step_writes();
    return false;
  }
  EventInput ev = child;
  ev.dedup_key = std::to_string(s.run_id) + "/" + s.step_key + "/" + std::to_string(s.attempt);
  if (!r[0][0].is_null()) ev.subject = r[0][0].c_str();
  const IngestResult started = ingest_in(impl_, cur(), ev, plan);
  if (started.run_ids.size() != 1)
    throw std::logic_error("a child workflow step must start exactly one run, started " +
                           std::to_string(started.run_ids.size()));
  child_run_id = started.run_ids.front();
  cur().exec_params(
      "UPDATE workflow_run SET parent_run_id = $2, parent_step = $3, parent_attempt = $4 "
      "WHERE id = $1",
      child_run_id, s.run_id, s.step_key, s.attempt);
  history(cur(), s.run_id, "waiting", s.step_key, s.attempt, owner,
          Json{{"child_run_id", child_run_id}});
  waiting_runs_.push_back(s.run_id);
  notify_ = true;  // the child's first steps are due for any worker
  return true;
}

}  // namespace chartflow::store
