// Ingest: events in, runs with their steps out, one transaction per call (or per batch of
// events), waking the workers in the same statement where it can.
#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

// An event whose dedup key ($1 type, $2 key) an archived event holds is a duplicate too: the
// key outlives the hot table's unique index (retention_dedup_archived, schema/engine/0019, takes
// the key's lock against the archiver moving that event). Keyless events skip the call.
const std::string kNotArchived =
    "CASE WHEN $2::text IS NULL THEN true ELSE retention_dedup_archived($1, $2) IS NULL END";

Json steps_json(const RunPlan& p) {
  Json steps = Json::array();
  for (const auto& s : p.steps) {
    Json o = {{"step_key", s.step_key},
              {"handler", s.handler},
              {"needs", s.needs},
              {"pending_needs", s.needs.size()},
              {"max_attempts", s.max_attempts},
              {"timeout_ms", s.timeout_ms}};
    if (s.concurrency_key) o["concurrency_key"] = *s.concurrency_key;
    if (s.concurrency_limit) o["concurrency_limit"] = *s.concurrency_limit;
    steps.push_back(std::move(o));
  }
  return steps;
}

// Inserts a run with its steps and 'scheduled' history for the event `ev` (a CTE or a VALUES
// list with column id). $1.. are the caller's; the run columns come at $first.. in the order
// version id, workflow, step count, subject, steps json.
std::string insert_run_sql(const std::string& ev, int first) {
  auto n = [&](int k) { return "$" + std::to_string(first + k); };
  return " run AS (INSERT INTO workflow_run (workflow_version_id, workflow, event_id, status, "
         "  remaining_steps, subject, started_at) SELECT " +
         n(0) + "::bigint, " + n(1) + ", " + ev + ".id, 'running', " + n(2) + "::int, " + n(3) +
         ", now() FROM " + ev + "  RETURNING id, event_id)," +
         insert_steps_cte("run", "run.id", n(4) + "::jsonb") +
         " h AS (INSERT INTO run_history (run_id, type, detail) SELECT run.id, 'scheduled', "
         "  jsonb_build_object('event_id', run.event_id, 'version_id', " +
         n(0) + "::bigint) FROM run)";
}

}  // namespace

IngestResult ingest_in(Store::Impl& impl, pqxx::transaction_base& tx, const EventInput& event,
                       const Store::PlanRuns& plan, const std::string* notify_origin,
                       bool* notified, PendingStarts* deferred) {
  IngestResult result;
  const auto plans = plan(event);
  if (plans.size() == 1 && !plans.front().debounce) {
    // The common case, event and run in one round trip, and with `notify_origin` ($10, else
    // NULL) the workers' wake-up too, sent only if the run was started.
    static const std::string kInsertEventRun =
        "WITH ev AS (INSERT INTO event (type, dedup_key, body, source, trace_id, trace_parent) "
        "SELECT $1, $2, $3::jsonb, $4, coalesce($11, trace_id_new()), $12 WHERE " +
        kNotArchived +
        " ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING "
        "RETURNING id)," +
        insert_run_sql("ev", 5) +
        " SELECT ev.id, run.id, (SELECT count(*) FROM (SELECT pg_notify('chartflow_wakeup_' || "
        "current_schema(), $10) FROM run WHERE $10::text IS NOT NULL) n) "
        "FROM ev LEFT JOIN run ON true";
    const auto& p = plans.front();
    std::optional<std::string> origin;
    if (notify_origin) origin = *notify_origin;
    const auto r = tx.exec_prepared(
        impl.prepare("insert_event_run", kInsertEventRun), event.type, opt(event.dedup_key),
        event.body.dump(), event.source, p.workflow_version_id, p.workflow,
        static_cast<int>(p.steps.size()), opt(event.subject), steps_json(p).dump(), opt(origin),
        opt(event.trace_id), opt(event.trace_parent));
    if (!r.empty()) {
      result.event_id = r[0][0].as<std::int64_t>();
      result.run_ids.push_back(r[0][1].as<std::int64_t>());
      if (notified && notify_origin) *notified = true;
      return result;
    }
  } else {
    auto ins = tx.exec_prepared(
        impl.prepare("insert_event",
                     "INSERT INTO event (type, dedup_key, body, source, trace_id, trace_parent) "
                     "SELECT $1, $2, $3::jsonb, $4, coalesce($5, trace_id_new()), $6 WHERE " +
                         kNotArchived +
                         " ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING "
                         "RETURNING id"),
        event.type, opt(event.dedup_key), event.body.dump(), event.source, opt(event.trace_id),
        opt(event.trace_parent));
    if (!ins.empty()) {
      result.event_id = ins[0][0].as<std::int64_t>();
      static const std::string kInsertRun =
          "WITH ev AS (SELECT $1::bigint AS id)," + insert_run_sql("ev", 2) + " SELECT id FROM run";
      PendingStarts starts;
      for (const RunPlan& p : plans) {
        if (p.debounce) {
          starts.push_back({result.event_id, event.subject, p, steps_json(p).dump()});
          result.debounced.push_back(p.workflow);
          continue;
        }
        auto run = tx.exec_prepared(
            impl.prepare("insert_run", kInsertRun), result.event_id, p.workflow_version_id,
            p.workflow, static_cast<int>(p.steps.size()), opt(event.subject), steps_json(p).dump());
        result.run_ids.push_back(run[0][0].as<std::int64_t>());
      }
      if (deferred)
        std::move(starts.begin(), starts.end(), std::back_inserter(*deferred));
      else if (!starts.empty())
        debounce_all(impl, tx, std::move(starts));
      return result;
    }
  }
  // The same dedup key was accepted before (and may have been archived since): report what it
  // started, start nothing.
  auto prev = tx.exec_params1(
      "SELECT id FROM event_all WHERE type = $1 AND dedup_key = $2 ORDER BY archived LIMIT 1",
      event.type, *event.dedup_key);
  result.event_id = prev[0].as<std::int64_t>();
  for (const auto& row : tx.exec_params(
           "SELECT id FROM workflow_run_all WHERE event_id = $1 ORDER BY id", result.event_id))
    result.run_ids.push_back(row[0].as<std::int64_t>());
  result.duplicate = true;
  return result;
}

bool ingest_each(Store::Impl& impl, pqxx::transaction_base& tx,
                 const std::vector<EventInput>& events, const Store::PlanRuns& plan,
                 std::vector<IngestResult>& out) {
  bool started = false;
  PendingStarts starts;
  for (const auto& ev : events) {
    out.push_back(ingest_in(impl, tx, ev, plan, nullptr, nullptr, &starts));
    started = started || (!out.back().duplicate && !out.back().run_ids.empty());
  }
  debounce_all(impl, tx, std::move(starts));
  return started;
}

IngestResult Store::ingest(EventInput event, const PlanRuns& plan, const BeforeIngest& before) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    if (before) {
      TxSql sql(tx, impl_.get());
      if (!before(sql, event)) {
        IngestResult dup;
        dup.duplicate = true;
        tx.commit();
        return dup;
      }
    }
    bool notified = false;
    auto result = ingest_in(*impl_, tx, event, plan, &impl_->wake_origin, &notified);
    if (!notified && !result.duplicate && !result.run_ids.empty())
      tx.exec_params(kNotifyWakeFrom, impl_->wake_origin);
    tx.commit();
    return result;
  });
}

std::vector<IngestResult> Store::ingest_batch(const std::vector<EventInput>& events,
                                              const PlanRuns& plan) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    std::vector<IngestResult> out(events.size());
    bool started = false;
    // Events without a dedup key that start exactly one run go in with one statement; the rest
    // (dedup checks, several runs or none) one by one.
    Json simple = Json::array();
    PendingStarts starts;
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& ev = events[i];
      auto plans = ev.dedup_key ? std::vector<RunPlan>{} : plan(ev);
      if (plans.size() == 1 && !plans.front().debounce) {
        const auto& p = plans.front();
        Json row = {{"i", i},
                    {"type", ev.type},
                    {"body", ev.body},
                    {"source", ev.source},
                    {"version_id", p.workflow_version_id},
                    {"workflow", p.workflow},
                    {"step_count", p.steps.size()},
                    {"steps", steps_json(p)}};
        if (ev.subject) row["subject"] = *ev.subject;
        if (ev.trace_id) row["trace_id"] = *ev.trace_id;
        if (ev.trace_parent) row["trace_parent"] = *ev.trace_parent;
        simple.push_back(std::move(row));
        continue;
      }
      if (ev.dedup_key)
        out[i] = ingest_in(*impl_, tx, ev, plan, nullptr, nullptr, &starts);
      else
        out[i] = ingest_in(
            *impl_, tx, ev, [&](const EventInput&) { return plans; }, nullptr, nullptr, &starts);
      started = started || (!out[i].duplicate && !out[i].run_ids.empty());
    }
    debounce_all(*impl_, tx, std::move(starts));
    if (!simple.empty()) {
      // Ids are drawn first so each event's run, steps and history can name it in the same
      // statement; the foreign keys are checked at its end, when every row is in.
      static const std::string kInsertEventsRuns =
          "WITH input AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('event', 'id')) AS "
          "  event_id, nextval(pg_get_serial_sequence('workflow_run', 'id')) AS run_id, x.* "
          "  FROM jsonb_to_recordset($1::jsonb) AS x(i int, type text, body jsonb, source text, "
          "  subject text, version_id bigint, workflow text, step_count int, steps jsonb, "
          "  trace_id text, trace_parent text)),"
          " ev AS (INSERT INTO event (id, type, body, source, trace_id, trace_parent) SELECT "
          "  event_id, type, body, source, coalesce(trace_id, trace_id_new()), trace_parent "
          "  FROM input),"
          " run AS (INSERT INTO workflow_run (id, workflow_version_id, workflow, event_id, "
          "  status, remaining_steps, subject, started_at) SELECT run_id, version_id, workflow, "
          "  event_id, 'running', step_count, subject, now() FROM input)," +
          insert_steps_cte("input i", "i.run_id", "i.steps") +
          " h AS (INSERT INTO run_history (run_id, type, detail) SELECT run_id, 'scheduled', "
          "  jsonb_build_object('event_id', event_id, 'version_id', version_id) FROM input)"
          " SELECT i, event_id, run_id FROM input";
      for (const auto& row : tx.exec_prepared(
               impl_->prepare("insert_events_runs", kInsertEventsRuns), simple.dump())) {
        auto& r = out[row[0].as<std::size_t>()];
        r.event_id = row[1].as<std::int64_t>();
        r.run_ids.push_back(row[2].as<std::int64_t>());
      }
      started = true;
    }
    if (started) tx.exec_params(kNotifyWakeFrom, impl_->wake_origin);
    tx.commit();
    return out;
  });
}

}  // namespace chartflow::store
