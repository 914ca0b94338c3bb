#include "engine/util/sql_rows.hpp"
#include "store/attempt_trace.hpp"

namespace chartflow::store {

std::optional<AttemptTrace> attempt_trace(Store& store, std::int64_t run_id,
                                          const std::string& step_key) {
  std::optional<AttemptTrace> out;
  store.with_autocommit_sql([&](Sql& sql) {
    const auto row = util::query_one(
        sql,
        "SELECT e.trace_id, e.trace_parent, r.workflow, s.handler, extract(epoch FROM "
        "coalesce(s.deadline_at - s.timeout_ms * interval '1 millisecond', now())) * 1000 "
        "AS claimed_ms FROM step_run s JOIN workflow_run r ON r.id = s.run_id "
        "JOIN event e ON e.id = r.event_id "
        "WHERE s.run_id = $1::bigint AND s.step_key = $2 AND e.trace_id IS NOT NULL",
        {std::to_string(run_id), step_key});
    if (!row) return;
    AttemptTrace t;
    t.trace_id = util::column_text(*row, "trace_id").value_or("");
    t.trace_parent = util::column_text(*row, "trace_parent");
    t.workflow = util::column_text(*row, "workflow").value_or("");
    t.handler = util::column_text(*row, "handler").value_or("");
    t.claimed_at = TimePoint(std::chrono::milliseconds(
        static_cast<std::int64_t>(util::column_double(*row, "claimed_ms").value_or(0))));
    out = std::move(t);
  });
  return out;
}

}  // namespace chartflow::store
