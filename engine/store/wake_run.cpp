// engine/signals.hpp: run_wake (schema/engine/0018_run_wake.sql) through the caller's Sql. A
// signal already kept for the run is enough unless a step waits for the name (it was kept while
// that step was on its way to waiting, and missed): then it is delivered. It never waits for a
// row another transaction holds.
#include "engine/signals.hpp"
#include "engine/util/sql_rows.hpp"

namespace chartflow {

std::string wake_run(Sql& sql, std::int64_t run_id, const std::string& name) {
  static constexpr const char* kWake = "SELECT run_wake($1, $2) AS outcome";
  auto row = util::query_one(sql, kWake, {std::to_string(run_id), name});
  return row ? util::column_text(*row, "outcome").value_or("not_found") : "not_found";
}

}  // namespace chartflow
