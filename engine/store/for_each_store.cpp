// A for_each step's fan-out, in the batch's transaction: its elements become step rows of their
// own (so each is claimed, retried, leased and recovered like any step, and one that succeeded
// is never run again), and the step's row waits for them as a step waits for its needs. The
// queue's functions are untouched: step_commit's promotion of dependents (p.needs ? step_key)
// makes the step ready again when its last element is done, and every element counts in the
// run's remaining steps like any other step.
#include "store/step_batch.hpp"

namespace chartflow::store {

bool BatchImpl::finish_fanned_out(const ClaimedStep& s, const std::string& owner,
                                  const std::vector<StepPlan>& elements) {
  QueryTimer timer("finish_fanned_out");
  CallDeadline deadline(impl_.fd(), impl_.call_timeout);
  Json keys = Json::array();
  Json rows = Json::array();
  for (const auto& e : elements) {
    keys.push_back(e.step_key);
    rows.push_back(
        {{"step_key", e.step_key},
         {"handler", e.handler},
         {"max_attempts", e.max_attempts},
         {"timeout_ms", e.timeout_ms},
         {"concurrency_key", e.concurrency_key ? Json(*e.concurrency_key) : Json()},
         {"concurrency_limit", e.concurrency_limit ? Json(*e.concurrency_limit) : Json()}});
  }
  // The attempt is given back, as a wait gives it: planning is not a try that can be used up.
  auto r = cur().exec_params(
      "WITH parent AS ("
      "  UPDATE step_run SET status = 'pending', needs = $5::jsonb, pending_needs = $6, "
      "    attempt = attempt - 1, lease_owner = NULL, wake = jsonb_build_object('kind', "
      "    'fan_in', 'count', $6::int), run_at = now() "
      "  WHERE run_id = $1 AND step_key = $2 AND lease_owner = $3 AND attempt = $4 "
      "    AND status = 'running' RETURNING run_id), "
      "elements AS ("
      "  INSERT INTO step_run (run_id, step_key, handler, status, needs, pending_needs, "
      "    max_attempts, timeout_ms, concurrency_key, concurrency_limit) "
      "  SELECT p.run_id, e.step_key, e.handler, 'ready', '[]', 0, e.max_attempts, "
      "    e.timeout_ms, e.concurrency_key, e.concurrency_limit "
      "  FROM parent p, jsonb_to_recordset($7::jsonb) AS e(step_key text, handler text, "
      "    max_attempts int, timeout_ms int, concurrency_key text, concurrency_limit int) "
      "  RETURNING run_id), "
      "run AS ("
      "  UPDATE workflow_run SET remaining_steps = remaining_steps + $6 "
      "  WHERE id = $1 AND EXISTS (SELECT 1 FROM parent)) "
      "SELECT count(*) FROM elements",
      s.run_id, s.step_key, owner, s.attempt, keys.dump(), static_cast<int>(elements.size()),
      rows.dump());
  if (r[0][0].as<std::int64_t>() == 0) {
    discard_step_writes();
    return false;
  }
  keep_step_writes();
  history(cur(), s.run_id, "scheduled", s.step_key, s.attempt, owner,
          Json{{"for_each", elements.size()}});
  return true;
}

}  // namespace chartflow::store
