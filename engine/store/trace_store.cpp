// Reads for the spans of traces (runtime/engine.cpp records them only when spans are exported):
// one statement each, no transaction around it, and JSON in and out so a batch of any size is
// one prepared statement.
#include <string>
#include <utility>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

TimePoint from_epoch_ms(double ms) {
  return TimePoint(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
}

}  // namespace

std::vector<Store::RunTimes> Store::run_times(const std::vector<std::int64_t>& run_ids) {
  return translate(*impl_, [&] {
    std::vector<RunTimes> out;
    if (run_ids.empty()) return out;
    pqxx::nontransaction tx(impl_->conn);
    for (const auto& row : tx.exec_prepared(
             impl_->prepare("run_times",
                            "SELECT id, workflow, status, extract(epoch FROM "
                            "coalesce(started_at, created_at)) * 1000, extract(epoch FROM "
                            "coalesce(finished_at, now())) * 1000 FROM workflow_run "
                            "WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)"),
             Json(run_ids).dump())) {
      RunTimes t;
      t.run_id = row[0].as<std::int64_t>();
      t.workflow = row[1].c_str();
      t.status = row[2].c_str();
      t.started = from_epoch_ms(row[3].as<double>());
      t.finished = from_epoch_ms(row[4].as<double>());
      out.push_back(std::move(t));
    }
    return out;
  });
}

}  // namespace chartflow::store
