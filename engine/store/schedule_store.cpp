// Schedule state: the last tick each schedule fired, and firing ticks with it.
#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

double epoch_seconds(TimePoint t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

TimePoint Store::schedule_last_tick(const std::string& key, const std::string& workflow,
                                    TimePoint now) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    // A schedule seen for the first time starts now: it does not backfill its past. Two
    // statements: a row another process inserted meanwhile is visible only to the second.
    tx.exec_params(
        "INSERT INTO schedule_state (schedule_key, workflow, last_tick) "
        "VALUES ($1, $2, to_timestamp($3)) ON CONFLICT (schedule_key) DO NOTHING",
        key, workflow, epoch_seconds(now));
    auto r = tx.exec_params(
        "SELECT extract(epoch FROM last_tick) FROM schedule_state WHERE schedule_key = $1", key);
    tx.commit();
    return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
        std::chrono::duration<double>(r[0][0].as<double>())));
  });
}

std::vector<IngestResult> Store::fire_ticks(const std::string& key,
                                            const std::vector<EventInput>& ticks, TimePoint through,
                                            const PlanRuns& plan) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    std::vector<IngestResult> out;
    const bool started = ingest_each(*impl_, tx, ticks, plan, out);
    // GREATEST: a process whose clock lags never moves the schedule back.
    tx.exec_params(
        "UPDATE schedule_state SET last_tick = greatest(last_tick, to_timestamp($2)), "
        "updated_at = now() WHERE schedule_key = $1",
        key, epoch_seconds(through));
    if (started) tx.exec(kNotifyWake);
    tx.commit();
    return out;
  });
}

}  // namespace chartflow::store
