// engine/signals.hpp: run_signal_deliver (schema/engine/0010_waiting_status.sql) through the
// caller's Sql. A signal already kept for the run is enough unless a step waits for the name
// (it was kept while that step was on its way to waiting, and missed): then it is delivered.
#include "engine/signals.hpp"
#include "engine/util/sql_rows.hpp"

namespace chartflow {

std::string wake_run(Sql& sql, std::int64_t run_id, const std::string& name) {
  static constexpr const char* kWake =
      "SELECT CASE WHEN EXISTS (SELECT 1 FROM run_signal WHERE run_id = $1 AND name = $2 AND "
      "consumed_by IS NULL) AND NOT EXISTS (SELECT 1 FROM step_run WHERE run_id = $1 AND "
      "status = 'waiting' AND wait_signal = $2) THEN 'pending' "
      "ELSE run_signal_deliver($1, $2, '{}'::jsonb) END AS outcome";
  auto row = util::query_one(sql, kWake, {std::to_string(run_id), name});
  return row ? util::column_text(*row, "outcome").value_or("not_found") : "not_found";
}

}  // namespace chartflow
