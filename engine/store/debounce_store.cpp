// Debounced starts (schema/engine/0013_debounce.sql): an event of a debounced trigger upserts
// its workflow's pending start for the key value instead of starting a run; the dispatcher
// starts the due ones, each exactly once, whichever process gets there first.
#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {

void debounce_all(Store::Impl& impl, pqxx::transaction_base& tx, PendingStarts starts) {
  // The latest event wins (its body is the run's); the window restarts with it, but the first
  // event's max_wait holds: a chart saved without pause still runs. A start already due stays
  // due: the dispatcher has yet to get to it, and the event joins it. A row being started by
  // another process right now is waited for, then gone: this event opens a new window.
  static const std::string kUpsert =
      "INSERT INTO debounce_pending AS d (workflow, key_value, event_id, workflow_version_id, "
      "  subject, step_count, steps, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, "
      "  now() + $8 * interval '1 millisecond') "
      "ON CONFLICT (workflow, key_value) DO UPDATE SET event_id = excluded.event_id, "
      "  workflow_version_id = excluded.workflow_version_id, subject = excluded.subject, "
      "  step_count = excluded.step_count, steps = excluded.steps, events = d.events + 1, "
      "  due_at = CASE WHEN d.due_at <= now() THEN d.due_at ELSE least(now() + $8 * "
      "    interval '1 millisecond', d.first_seen + $9 * interval '1 millisecond') END";
  std::stable_sort(starts.begin(), starts.end(), [](const auto& a, const auto& b) {
    return std::tie(a.plan.workflow, a.plan.debounce->key_value) <
           std::tie(b.plan.workflow, b.plan.debounce->key_value);
  });
  for (const auto& s : starts) {
    const auto& d = *s.plan.debounce;
    tx.exec_prepared(impl.prepare("debounce_upsert", kUpsert), s.plan.workflow, d.key_value,
                     s.event_id, s.plan.workflow_version_id, opt(s.subject),
                     static_cast<int>(s.plan.steps.size()), s.steps, d.window_ms, d.max_wait_ms);
  }
}

std::vector<DebouncedStart> Store::start_due_debounced(int limit) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    // One statement: the due rows are locked (those another process is starting are skipped),
    // deleted, and become runs with their steps and 'scheduled' history. The foreign keys are
    // checked at its end, when every row is in.
    static const std::string kStartDue =
        "WITH due AS (SELECT workflow, key_value FROM debounce_pending WHERE due_at <= now() "
        "  ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED),"
        " input AS (DELETE FROM debounce_pending d USING due WHERE d.workflow = due.workflow "
        "  AND d.key_value = due.key_value RETURNING nextval(pg_get_serial_sequence("
        "  'workflow_run', 'id')) AS run_id, d.workflow, d.event_id, d.workflow_version_id, "
        "  d.subject, d.step_count, d.steps, d.events),"
        " run AS (INSERT INTO workflow_run (id, workflow_version_id, workflow, event_id, "
        "  status, remaining_steps, subject, started_at) SELECT run_id, workflow_version_id, "
        "  workflow, event_id, 'running', step_count, subject, now() FROM input)," +
        insert_steps_cte("input i", "i.run_id", "i.steps") +
        " h AS (INSERT INTO run_history (run_id, type, detail) SELECT run_id, 'scheduled', "
        "  jsonb_build_object('event_id', event_id, 'version_id', workflow_version_id, "
        "  'debounced_events', events) FROM input)"
        " SELECT run_id, workflow, events FROM input ORDER BY run_id";
    std::vector<DebouncedStart> out;
    for (const auto& row : tx.exec_prepared(impl_->prepare("debounce_start", kStartDue), limit))
      out.push_back({row[0].as<std::int64_t>(), row[1].c_str(), row[2].as<int>()});
    if (!out.empty()) tx.exec(kNotifyWake);
    tx.commit();
    return out;
  });
}

Json Store::debounce_pending_counts() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec(
        "SELECT coalesce(jsonb_object_agg(workflow, n), '{}'::jsonb)::text FROM (SELECT "
        "workflow, count(*) AS n FROM debounce_pending GROUP BY workflow) c");
    return Json::parse(r[0][0].c_str());
  });
}

}  // namespace chartflow::store
