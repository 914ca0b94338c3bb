// Run-end events: written by the transaction that moves a run to succeeded or failed, so a run
// that ended is never without its event and an event never names a run that did not end.
#include "core/trace.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {

bool emit_run_end(Store::Impl& impl, pqxx::transaction_base& tx, std::int64_t run_id,
                  const Store::PlanRuns& plan) {
  // The depth of the chain so far comes from the event that started this run; the number of
  // run-level failures tells a failure after an operator retry apart from the first one.
  static const std::string kRunEnd =
      "SELECT r.workflow, r.status, r.subject, r.error, "
      "  CASE WHEN e.type IN ('workflow.succeeded', 'workflow.failed') "
      "    THEN coalesce((e.body->>'depth')::int, 1) ELSE 0 END, "
      "  (SELECT coalesce(jsonb_object_agg(s.step_key, s.output), '{}')::text FROM step_run s "
      "    WHERE s.run_id = r.id AND s.status = 'succeeded'), "
      "  (SELECT count(*) FROM run_history h WHERE h.run_id = r.id AND h.type = 'failed' "
      "    AND h.step IS NULL), r.event_id, e.trace_id "
      "FROM workflow_run r JOIN event e ON e.id = r.event_id WHERE r.id = $1";
  auto r = tx.exec_prepared(impl.prepare("run_end", kRunEnd), run_id);
  if (r.empty()) return false;
  const auto& row = r[0];
  const std::string status = row[1].c_str();
  if (status != "succeeded" && status != "failed") return false;
  const int depth = row[4].as<int>() + 1;
  if (depth > kMaxChainDepth) {
    // Logged against the run, so the operator sees why the chain stopped there.
    tx.exec_params(
        "INSERT INTO log_record (level, message, workflow, run_id) SELECT 2, $2, workflow, id "
        "FROM workflow_run WHERE id = $1",
        run_id,
        "run-end event not emitted: chain of " + std::to_string(depth) +
            " runs exceeds the limit of " + std::to_string(kMaxChainDepth));
    return false;
  }
  EventInput ev;
  ev.source = "run";
  // The runs it starts join this run's trace, under this run's root span (docs/operations.md,
  // Traces): one trace follows a chain from the first event.
  if (!row[8].is_null()) {
    ev.trace_id = row[8].c_str();
    ev.trace_parent = core::run_span_id(*ev.trace_id, run_id);
  }
  if (!row[2].is_null()) ev.subject = row[2].c_str();
  ev.body = {{"run_id", run_id},
             {"workflow", row[0].c_str()},
             {"status", status},
             {"event_id", row[7].as<std::int64_t>()},
             {"depth", depth}};
  // The subject (a chart id) in the body too, for a handler of the chained run to look up.
  if (ev.subject) ev.body["subject"] = *ev.subject;
  if (status == "succeeded") {
    ev.type = kRunSucceededEvent;
    ev.body["output"] = Json::parse(row[5].c_str());
    // A run succeeds once: its id is the key.
    ev.dedup_key = std::to_string(run_id);
  } else {
    ev.type = kRunFailedEvent;
    ev.body["error"] = row[3].is_null() ? "" : row[3].c_str();
    // A failed run can be retried by an operator and fail again: each failure is its own event.
    ev.dedup_key = std::to_string(run_id) + "/" + row[6].c_str();
  }
  auto result = ingest_in(impl, tx, ev, plan);
  return !result.duplicate && !result.run_ids.empty();
}

}  // namespace chartflow::store
