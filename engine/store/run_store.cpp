// The write path of runs: ingest, claim, finish, timers, leases and operator commands.
#include <chrono>
#include <variant>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

// step_commit raises this when a step that wrote has lost its lease (schema/0012).
constexpr const char* kLeaseLostState = "CFL01";

TimePoint from_epoch_ms(double ms) {
  return TimePoint(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
}

// A PostgreSQL array literal of ids: {1,2,3}.
std::string id_array(const std::vector<std::int64_t>& ids) {
  std::string out = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "}";
}

// The claimed rows as step_commit returns them (to_jsonb of step_claim's rows).
std::vector<ClaimedStep> read_claimed(const Json& rows) {
  std::vector<ClaimedStep> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    ClaimedStep c;
    c.run_id = row.at("c_run_id").get<std::int64_t>();
    c.step_key = row.at("c_step_key").get<std::string>();
    c.handler = row.at("c_handler").get<std::string>();
    c.attempt = row.at("c_attempt").get<int>();
    c.max_attempts = row.at("c_max_attempts").get<int>();
    c.workflow_version_id = row.at("c_workflow_version_id").get<std::int64_t>();
    c.workflow = row.at("c_workflow").get<std::string>();
    c.event_id = row.at("c_event_id").get<std::int64_t>();
    c.event_type = row.at("c_event_type").get<std::string>();
    c.needs_output = row.at("c_outputs");
    if (const auto& wake = row.at("c_wake"); !wake.is_null())
      c.wake = Json::parse(wake.get<std::string>());
    c.deadline = from_epoch_ms(row.at("c_deadline_ms").get<double>());
    out.push_back(std::move(c));
  }
  return out;
}

void history(pqxx::transaction_base& tx, std::int64_t run_id, const char* type,
             const std::optional<std::string>& step, std::optional<int> attempt,
             const std::optional<std::string>& worker, const std::optional<Json>& detail) {
  std::optional<std::string> detail_text;
  if (detail) detail_text = detail->dump();
  std::optional<std::string> attempt_text;
  if (attempt) attempt_text = std::to_string(*attempt);
  tx.exec_params(
      "INSERT INTO run_history (run_id, type, step, attempt, worker, detail) VALUES ($1, $2, $3, "
      "$4::int, $5, $6::jsonb)",
      run_id, type, opt(step), opt(attempt_text), opt(worker), opt(detail_text));
}

// The claim (schema/0010_claim_function.sql) returns every column the worker needs to run the
// step, so it sends no second query; the event body is not among them: workers cache it by id.
template <typename Tx>
std::vector<ClaimedStep> claim_in(Store::Impl& impl, Tx& tx, const std::string& owner, int limit,
                                  std::chrono::milliseconds lease, bool include_keyed,
                                  bool own_transaction) {
  auto r = tx.exec_prepared(
      impl.prepare(
          "claim_steps",
          "SELECT coalesce(jsonb_agg(to_jsonb(c)), '[]') FROM step_claim($1, $2, $3, $4, $5) c"),
      owner, static_cast<std::int64_t>(lease.count()), limit, include_keyed, own_transaction);
  return read_claimed(Json::parse(r[0][0].c_str()));
}

// The transaction is opened and closed by hand (BEGIN/COMMIT over a libpqxx nontransaction), so
// that it is opened only when something has to be written before the commit: a batch whose
// steps wrote nothing themselves is finished, logged and followed by the next claim in one
// statement that commits by itself (step_commit, schema/0012_step_commit.sql).
// Savepoints are issued by hand too (libpqxx 6.4's subtransaction does not open its savepoint
// for exec_params, which would let a failed attempt's writes through), and only where needed: a
// step's writes are isolated by one only when earlier steps' writes in the transaction must
// survive its failure; the first writer's are discarded by rolling the transaction back.
class BatchImpl : public StepBatch {
 public:
  explicit BatchImpl(Store::Impl& impl) : impl_(impl), tx_(impl.conn) {}
  ~BatchImpl() override {
    if (!open_) return;
    try {
      tx_.exec("ROLLBACK");
    } catch (...) {
      // The connection is gone, and the transaction with it.
    }
  }

  Sql& sql() override {
    if (!in_step_) {
      if (!open_) {
        tx_.exec("BEGIN");
        open_ = true;
      } else if (dirty_) {
        // The previous step's savepoint is released in the same round trip as this one opens.
        tx_.exec(release_pending_ ? "RELEASE SAVEPOINT step; SAVEPOINT step" : "SAVEPOINT step");
        release_pending_ = false;
        step_savepoint_ = true;
      }
      in_step_ = true;
    }
    return sql_;
  }

  void discard_step_writes() override {
    if (!in_step_) return;
    if (step_savepoint_) {
      tx_.exec("ROLLBACK TO SAVEPOINT step");
    } else {
      // Nothing before this step's writes needs keeping.
      tx_.exec("ROLLBACK");
      open_ = false;
    }
    in_step_ = false;
    step_savepoint_ = false;
  }

  bool finish_done(const ClaimedStep& s, const std::string& /*owner*/, const Json& output,
                   bool skipped) override {
    // Finished with the batch's other steps in one statement at commit. One that wrote and turns
    // out to have lost its lease by then fails the commit (step_commit raises), so its writes
    // never stand without its completion.
    last_run_status_.clear();
    deferred_.push_back({{"run_id", s.run_id},
                         {"step_key", s.step_key},
                         {"attempt", s.attempt},
                         {"status", skipped ? "skipped" : "succeeded"},
                         {"output", output},
                         {"wrote", in_step_}});
    keep_step_writes();
    return true;
  }

  bool finish_retry(const ClaimedStep& s, const std::string& owner, std::chrono::milliseconds after,
                    const std::string& error) override {
    QueryTimer timer("finish_retry");
    discard_step_writes();
    auto r = cur().exec_params(
        "UPDATE step_run SET status = 'retrying', run_at = now() + $5 * interval '1 millisecond',"
        " error = $6, lease_owner = NULL, wake = NULL "
        "WHERE run_id = $1 AND step_key = $2 AND lease_owner = $3 AND attempt = $4 "
        "AND status = 'running'",
        s.run_id, s.step_key, owner, s.attempt, static_cast<std::int64_t>(after.count()), error);
    if (r.affected_rows() == 0) return false;
    history(cur(), s.run_id, "retried", s.step_key, s.attempt, owner,
            Json{{"error", error}, {"delay_ms", after.count()}});
    return true;
  }

  bool finish_failed(const ClaimedStep& s, const std::string& owner,
                     const std::string& error) override {
    QueryTimer timer("finish_failed");
    auto r = cur().exec_params(
        "UPDATE step_run SET status = 'failed', error = $5, finished_at = clock_timestamp(), "
        "lease_owner = NULL, wake = NULL "
        "WHERE run_id = $1 AND step_key = $2 AND lease_owner = $3 AND attempt = $4 "
        "AND status = 'running'",
        s.run_id, s.step_key, owner, s.attempt, error);
    if (r.affected_rows() == 0) {
      discard_step_writes();
      return false;
    }
    keep_step_writes();
    history(cur(), s.run_id, "failed", s.step_key, s.attempt, owner, Json{{"error", error}});
    auto run = cur().exec_params(
        "UPDATE workflow_run SET status = 'failed', finished_at = clock_timestamp(), error = $2 "
        "WHERE id = $1 AND status IN ('running', 'waiting', 'pending') RETURNING id",
        s.run_id, "step " + s.step_key + " failed: " + error);
    last_run_status_ = run.empty() ? "" : "failed";
    if (!run.empty()) {
      history(cur(), s.run_id, "failed", std::nullopt, std::nullopt, owner,
              Json{{"step", s.step_key}});
    }
    return true;
  }

  bool finish_wait(const ClaimedStep& s, const std::string& owner,
                   const std::optional<std::string>& signal,
                   const std::optional<TimePoint>& until) override {
    QueryTimer timer("finish_wait");
    std::optional<std::string> until_ms;
    if (until)
      until_ms = std::to_string(
          std::chrono::duration_cast<std::chrono::milliseconds>(until->time_since_epoch()).count());
    // schema/0013_wait_and_signal.sql; takes a signal that arrived before the step waited.
    auto r = cur().exec_prepared(
        impl_.prepare("step_wait", "SELECT step_wait($1, $2, $3, $4, $5, $6::bigint)"), s.run_id,
        s.step_key, owner, s.attempt, opt(signal), opt(until_ms));
    const std::string outcome = r[0][0].c_str();
    if (outcome == "lost") {
      discard_step_writes();  // if the lease was lost, the handler's writes go too
      return false;
    }
    keep_step_writes();
    if (outcome == "waiting") waiting_runs_.push_back(s.run_id);
    return true;
  }

  void log(const LogRecord& rec) override { logs_.push_back(rec); }
  const std::vector<std::string>& succeeded_runs() const override { return succeeded_runs_; }
  const std::string& last_run_status() const override { return last_run_status_; }
  void emit_succeeded_with(const Store::PlanRuns& plan) override { succeeded_plan_ = plan; }

  void emit_run_end(std::int64_t run_id, const Store::PlanRuns& plan) override {
    keep_step_writes();
    if (store::emit_run_end(impl_, cur(), run_id, plan)) notify_ = true;
  }

  std::vector<ClaimedStep> commit(const std::string& owner, int claim_next,
                                  std::chrono::milliseconds lease, bool include_keyed) override {
    QueryTimer timer("batch_commit");
    keep_step_writes();
    // The run-end events of the runs these finishes end commit with them.
    if (succeeded_plan_ && !deferred_.empty()) cur();
    std::vector<ClaimedStep> next;
    if (!deferred_.empty() || !waiting_runs_.empty() || !logs_.empty() || claim_next > 0) {
      // Claiming the next steps (often the ones this batch just released) in the same commit
      // halves the durable commits per step.
      static const std::string kStepCommit =
          "SELECT step_commit($1, $2::jsonb, $3::bigint[], $4::jsonb, $5, $6, $7)";
      pqxx::result r;
      try {
        r = tx_.exec_prepared(impl_.prepare("step_commit", kStepCommit), owner, deferred_.dump(),
                              id_array(waiting_runs_), log_records_json(logs_).dump(), claim_next,
                              static_cast<std::int64_t>(lease.count()), include_keyed);
      } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != kLeaseLostState) throw;
        tx_.exec("ROLLBACK");
        open_ = false;
        throw LeaseLost(lost_steps(owner));
      }
      deferred_ = Json::array();
      waiting_runs_.clear();
      logs_.clear();
      const Json result = Json::parse(r[0][0].c_str());
      for (const auto& wf : result.at("succeeded"))
        succeeded_runs_.push_back(wf.get<std::string>());
      if (succeeded_plan_)
        for (const auto& id : result.at("succeeded_ids"))
          if (store::emit_run_end(impl_, tx_, id.get<std::int64_t>(), succeeded_plan_))
            notify_ = true;
      next = read_claimed(result.at("claimed"));
    }
    if (notify_) cur().exec(kNotifyWake);
    if (open_) {
      // A transaction an error had aborted cannot get here: every path to COMMIT sends a
      // statement after the steps' own, which would have failed first.
      tx_.exec("COMMIT");
      open_ = false;
    }
    return next;
  }

 private:
  // The transaction for a write outside the current step's own (finishes, history, events):
  // opened if need be; what is written through it stays, whatever a later step does.
  pqxx::transaction_base& cur() {
    if (!open_) {
      tx_.exec("BEGIN");
      open_ = true;
    }
    if (!in_step_) dirty_ = true;
    return tx_;
  }

  // The deferred steps that wrote and are no longer this owner's at their attempt.
  std::vector<std::pair<std::int64_t, std::string>> lost_steps(const std::string& owner) {
    auto r = tx_.exec_params(
        "SELECT i.run_id, i.step_key FROM jsonb_to_recordset($1::jsonb) AS i(run_id bigint, "
        "step_key text, attempt int, wrote boolean) WHERE i.wrote AND NOT EXISTS (SELECT 1 FROM "
        "step_run s WHERE s.run_id = i.run_id AND s.step_key = i.step_key AND s.lease_owner = $2 "
        "AND s.attempt = i.attempt AND s.status = 'running')",
        deferred_.dump(), owner);
    std::vector<std::pair<std::int64_t, std::string>> out;
    for (const auto& row : r) out.emplace_back(row[0].as<std::int64_t>(), row[1].c_str());
    return out;
  }

  // The step's writes stay. Its savepoint is released lazily (with the next step's, or by
  // COMMIT): a later step's rollback only ever goes back to that later step's own savepoint.
  void keep_step_writes() {
    if (!in_step_) return;
    if (step_savepoint_) release_pending_ = true;
    in_step_ = false;
    step_savepoint_ = false;
    dirty_ = true;
  }

  Store::Impl& impl_;
  pqxx::nontransaction tx_;  // BEGIN and COMMIT are sent by hand, see the class comment
  TxSql sql_{tx_, &impl_};
  bool open_ = false;             // BEGIN was sent
  bool dirty_ = false;            // the transaction holds writes that must survive a later step
  bool in_step_ = false;          // the current step has been handed sql()
  bool step_savepoint_ = false;   // ... inside its own savepoint
  bool release_pending_ = false;  // a kept step's savepoint is still open, see keep_step_writes
  std::vector<LogRecord> logs_;
  Json deferred_ = Json::array();           // finish_done calls not yet sent, see commit
  std::vector<std::int64_t> waiting_runs_;  // runs to mark waiting at commit, see finish_wait
  Store::PlanRuns succeeded_plan_;          // see emit_succeeded_with
  std::vector<std::string> succeeded_runs_;
  std::string last_run_status_;
  bool notify_ = false;  // runs were started by a run-end event
};

}  // namespace

namespace {

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
         ", now() FROM " + ev +
         "  RETURNING id, event_id),"
         " steps AS (INSERT INTO step_run (run_id, step_key, handler, status, needs, "
         "  pending_needs, max_attempts, timeout_ms, concurrency_key, concurrency_limit) "
         "  SELECT run.id, x.step_key, x.handler, CASE WHEN x.pending_needs = 0 THEN 'ready' "
         "  ELSE 'pending' END, x.needs, x.pending_needs, x.max_attempts, x.timeout_ms, "
         "  x.concurrency_key, x.concurrency_limit FROM run, jsonb_to_recordset(" +
         n(4) +
         "::jsonb) AS x(step_key text, handler text, needs jsonb, pending_needs int, "
         "  max_attempts int, timeout_ms int, concurrency_key text, concurrency_limit int)),"
         " h AS (INSERT INTO run_history (run_id, type, detail) SELECT run.id, 'scheduled', "
         "  jsonb_build_object('event_id', run.event_id, 'version_id', " +
         n(0) + "::bigint) FROM run)";
}

}  // namespace

IngestResult ingest_in(Store::Impl& impl, pqxx::transaction_base& tx, const EventInput& event,
                       const Store::PlanRuns& plan, const std::string* notify_origin,
                       bool* notified) {
  IngestResult result;
  const auto plans = plan(event);
  if (plans.size() == 1) {
    // The common case, event and run in one round trip, and with `notify_origin` ($10, else
    // NULL) the workers' wake-up too, sent only if the run was started.
    static const std::string kInsertEventRun =
        "WITH ev AS (INSERT INTO event (type, dedup_key, body, source) VALUES ($1, $2, "
        "$3::jsonb, $4) ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING "
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
        static_cast<int>(p.steps.size()), opt(event.subject), steps_json(p).dump(), opt(origin));
    if (!r.empty()) {
      result.event_id = r[0][0].as<std::int64_t>();
      result.run_ids.push_back(r[0][1].as<std::int64_t>());
      if (notified && notify_origin) *notified = true;
      return result;
    }
  } else {
    auto ins = tx.exec_prepared(
        impl.prepare("insert_event",
                     "INSERT INTO event (type, dedup_key, body, source) VALUES ($1, $2, "
                     "$3::jsonb, $4) ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL "
                     "DO NOTHING RETURNING id"),
        event.type, opt(event.dedup_key), event.body.dump(), event.source);
    if (!ins.empty()) {
      result.event_id = ins[0][0].as<std::int64_t>();
      static const std::string kInsertRun =
          "WITH ev AS (SELECT $1::bigint AS id)," + insert_run_sql("ev", 2) + " SELECT id FROM run";
      for (const RunPlan& p : plans) {
        auto run = tx.exec_prepared(
            impl.prepare("insert_run", kInsertRun), result.event_id, p.workflow_version_id,
            p.workflow, static_cast<int>(p.steps.size()), opt(event.subject), steps_json(p).dump());
        result.run_ids.push_back(run[0][0].as<std::int64_t>());
      }
      return result;
    }
  }
  // The same dedup key was accepted before: report what it started, start nothing.
  auto prev = tx.exec_params1("SELECT id FROM event WHERE type = $1 AND dedup_key = $2", event.type,
                              *event.dedup_key);
  result.event_id = prev[0].as<std::int64_t>();
  for (const auto& row : tx.exec_params(
           "SELECT id FROM workflow_run WHERE event_id = $1 ORDER BY id", result.event_id))
    result.run_ids.push_back(row[0].as<std::int64_t>());
  result.duplicate = true;
  return result;
}

bool ingest_each(Store::Impl& impl, pqxx::transaction_base& tx,
                 const std::vector<EventInput>& events, const Store::PlanRuns& plan,
                 std::vector<IngestResult>& out) {
  bool started = false;
  for (const auto& ev : events) {
    out.push_back(ingest_in(impl, tx, ev, plan));
    started = started || (!out.back().duplicate && !out.back().run_ids.empty());
  }
  return started;
}

IngestResult Store::ingest(EventInput event, const PlanRuns& plan, const BeforeIngest& before) {
  return translate([&] {
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
  return translate([&] {
    pqxx::work tx(impl_->conn);
    std::vector<IngestResult> out(events.size());
    bool started = false;
    // Events without a dedup key that start exactly one run go in with one statement; the rest
    // (dedup checks, several runs or none) one by one.
    Json simple = Json::array();
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& ev = events[i];
      auto plans = ev.dedup_key ? std::vector<RunPlan>{} : plan(ev);
      if (plans.size() == 1) {
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
        simple.push_back(std::move(row));
        continue;
      }
      if (ev.dedup_key)
        out[i] = ingest_in(*impl_, tx, ev, plan);
      else
        out[i] = ingest_in(*impl_, tx, ev, [&](const EventInput&) { return plans; });
      started = started || (!out[i].duplicate && !out[i].run_ids.empty());
    }
    if (!simple.empty()) {
      // Ids are drawn first so each event's run, steps and history can name it in the same
      // statement; the foreign keys are checked at its end, when every row is in.
      static const std::string kInsertEventsRuns =
          "WITH input AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('event', 'id')) AS "
          "  event_id, nextval(pg_get_serial_sequence('workflow_run', 'id')) AS run_id, x.* "
          "  FROM jsonb_to_recordset($1::jsonb) AS x(i int, type text, body jsonb, source text, "
          "  subject text, version_id bigint, workflow text, step_count int, steps jsonb)),"
          " ev AS (INSERT INTO event (id, type, body, source) SELECT event_id, type, body, "
          "  source FROM input),"
          " run AS (INSERT INTO workflow_run (id, workflow_version_id, workflow, event_id, "
          "  status, remaining_steps, subject, started_at) SELECT run_id, version_id, workflow, "
          "  event_id, 'running', step_count, subject, now() FROM input),"
          " steps AS (INSERT INTO step_run (run_id, step_key, handler, status, needs, "
          "  pending_needs, max_attempts, timeout_ms, concurrency_key, concurrency_limit) "
          "  SELECT i.run_id, x.step_key, x.handler, CASE WHEN x.pending_needs = 0 THEN 'ready' "
          "  ELSE 'pending' END, x.needs, x.pending_needs, x.max_attempts, x.timeout_ms, "
          "  x.concurrency_key, x.concurrency_limit FROM input i, jsonb_to_recordset(i.steps) "
          "  AS x(step_key text, handler text, needs jsonb, pending_needs int, max_attempts int, "
          "  timeout_ms int, concurrency_key text, concurrency_limit int)),"
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

std::vector<ClaimedStep> Store::claim(const std::string& owner, int limit,
                                      std::chrono::milliseconds lease, bool include_keyed) {
  return translate([&] {
    // One statement that commits by itself (asynchronously, see the function): a transaction
    // around it would cost three more round trips on every claim.
    pqxx::nontransaction tx(impl_->conn);
    return claim_in(*impl_, tx, owner, limit, lease, include_keyed, true);
  });
}

int Store::heartbeat(const std::string& owner, std::chrono::milliseconds lease) {
  return translate([&] {
    pqxx::work tx(impl_->conn);
    tx.exec("SET LOCAL synchronous_commit = off");  // a lost renewal only shortens a lease
    // SKIP LOCKED: rows our own open batch has just finished are locked by it; waiting for them
    // would stall the heartbeat until the batch commits and let the other leases lapse.
    auto r = tx.exec_params(
        "UPDATE step_run s SET lease_expires_at = now() + $2 * interval '1 millisecond' "
        "FROM (SELECT run_id, step_key FROM step_run WHERE lease_owner = $1 AND status = "
        "'running' AND lease_expires_at IS NOT NULL FOR UPDATE SKIP LOCKED) mine "
        "WHERE s.run_id = mine.run_id AND s.step_key = mine.step_key",
        owner, static_cast<std::int64_t>(lease.count()));
    tx.commit();
    return static_cast<int>(r.affected_rows());
  });
}

int Store::reclaim_all_running(const std::string& reason) {
  return translate([&] {
    pqxx::work tx(impl_->conn);
    auto r = tx.exec(
        "UPDATE step_run SET status = 'ready', run_at = now(), lease_owner = NULL "
        "WHERE status = 'running' AND lease_expires_at IS NOT NULL "
        "RETURNING run_id, step_key, attempt");
    for (const auto& row : r)
      history(tx, row[0].as<std::int64_t>(), "lease_expired", std::string(row[1].c_str()),
              row[2].as<int>(), std::nullopt, Json{{"reason", reason}});
    if (!r.empty()) tx.exec(kNotifyWake);
    tx.commit();
    return static_cast<int>(r.size());
  });
}

std::unique_ptr<StepBatch> Store::begin_batch() {
  return translate([&] { return std::make_unique<BatchImpl>(*impl_); });
}

Probe Store::probe() {
  return translate([&] {
    pqxx::read_transaction tx(impl_->conn);
    // The idle engine's only query: when is the next thing due? (Every running step has a
    // lease; saying so lets the running steps' partial index serve, schema/0016.)
    auto r = tx.exec(
        "SELECT extract(epoch FROM (SELECT min(run_at) FROM step_run WHERE status IN "
        "('ready', 'retrying'))) * 1000, "
        "extract(epoch FROM (SELECT min(wait_until) FROM step_run WHERE status = 'waiting')) * "
        "1000, "
        "extract(epoch FROM (SELECT min(least(lease_expires_at, deadline_at)) FROM step_run "
        "WHERE status = 'running' AND lease_expires_at IS NOT NULL)) * 1000, "
        "extract(epoch FROM now()) * 1000");
    Probe p;
    if (!r[0][0].is_null()) p.next_due = from_epoch_ms(r[0][0].as<double>());
    if (!r[0][1].is_null()) p.next_wait = from_epoch_ms(r[0][1].as<double>());
    if (!r[0][2].is_null()) p.next_expiry = from_epoch_ms(r[0][2].as<double>());
    p.now = from_epoch_ms(r[0][3].as<double>());
    return p;
  });
}

int Store::fire_due_waits() {
  return translate([&] {
    pqxx::work tx(impl_->conn);
    auto r = tx.exec(
        "UPDATE step_run SET status = 'ready', run_at = now(), wait_until = NULL, "
        "wake = jsonb_build_object('kind', CASE WHEN wait_signal IS NULL THEN 'timer' ELSE "
        "'deadline' END, 'signal', wait_signal) "
        "WHERE (run_id, step_key) IN (SELECT run_id, step_key FROM step_run WHERE status = "
        "'waiting' AND wait_until <= now() LIMIT 500 FOR UPDATE SKIP LOCKED) "
        "RETURNING run_id, step_key, wait_signal");
    for (const auto& row : r) {
      history(tx, row[0].as<std::int64_t>(), "signalled", std::string(row[1].c_str()), std::nullopt,
              std::nullopt, Json{{"kind", row[2].is_null() ? "timer" : "deadline"}});
      tx.exec_params(
          "UPDATE workflow_run SET status = 'running' WHERE id = $1 AND status = 'waiting'",
          row[0].as<std::int64_t>());
    }
    tx.commit();
    return static_cast<int>(r.size());
  });
}

std::vector<Expired> Store::expired_steps(int limit) {
  return translate([&] {
    pqxx::read_transaction tx(impl_->conn);
    std::vector<Expired> out;
    for (const auto& row : tx.exec_params(
             "SELECT s.run_id, s.step_key, s.attempt, s.max_attempts, r.workflow_version_id, "
             "s.deadline_at < now() FROM step_run s JOIN workflow_run r ON r.id = s.run_id "
             // IS NOT NULL: the condition of the running steps' index (schema/0016).
             "WHERE s.status = 'running' AND s.lease_expires_at IS NOT NULL "
             "AND (s.lease_expires_at < now() OR s.deadline_at < now()) LIMIT $1",
             limit)) {
      Expired e;
      e.run_id = row[0].as<std::int64_t>();
      e.step_key = row[1].c_str();
      e.attempt = row[2].as<int>();
      e.max_attempts = row[3].as<int>();
      e.workflow_version_id = row[4].as<std::int64_t>();
      e.timed_out = row[5].as<bool>();
      out.push_back(std::move(e));
    }
    return out;
  });
}

bool Store::expire_step(const Expired& e, std::optional<std::chrono::milliseconds> retry_after,
                        const std::string& error, const PlanRuns& on_run_end) {
  return translate([&] {
    pqxx::work tx(impl_->conn);
    const char* type = e.timed_out ? "timed_out" : "lease_expired";
    bool changed = false;
    if (retry_after) {
      // A dead worker is not the step's fault, so a lost lease adds an attempt rather than using
      // one up. The attempt number itself only grows: it is what fences off the late finisher.
      auto r = tx.exec_params(
          "UPDATE step_run SET status = 'retrying', lease_owner = NULL, error = $4, "
          "run_at = now() + $5 * interval '1 millisecond', "
          "max_attempts = CASE WHEN $6 THEN max_attempts ELSE max_attempts + 1 END "
          "WHERE run_id = $1 AND step_key = $2 AND attempt = $3 AND status = 'running'",
          e.run_id, e.step_key, e.attempt, error, static_cast<std::int64_t>(retry_after->count()),
          e.timed_out);
      changed = r.affected_rows() == 1;
      if (changed)
        history(tx, e.run_id, type, e.step_key, e.attempt, std::nullopt,
                Json{{"error", error}, {"delay_ms", retry_after->count()}});
    } else {
      auto r = tx.exec_params(
          "UPDATE step_run SET status = 'failed', lease_owner = NULL, error = $4, "
          "finished_at = now() "
          "WHERE run_id = $1 AND step_key = $2 AND attempt = $3 AND status = 'running'",
          e.run_id, e.step_key, e.attempt, error);
      changed = r.affected_rows() == 1;
      if (changed) {
        history(tx, e.run_id, type, e.step_key, e.attempt, std::nullopt, Json{{"error", error}});
        history(tx, e.run_id, "failed", e.step_key, e.attempt, std::nullopt,
                Json{{"error", error}});
        auto run = tx.exec_params(
            "UPDATE workflow_run SET status = 'failed', finished_at = now(), error = $2 "
            "WHERE id = $1 AND status IN ('running', 'waiting', 'pending') RETURNING id",
            e.run_id, "step " + e.step_key + " failed: " + error);
        if (!run.empty()) {
          history(tx, e.run_id, "failed", std::nullopt, std::nullopt, std::nullopt,
                  Json{{"step", e.step_key}});
          if (on_run_end) emit_run_end(*impl_, tx, e.run_id, on_run_end);
        }
      }
    }
    if (!changed) return false;
    tx.exec_params(
        "INSERT INTO log_record (level, message, workflow, run_id, step, attempt) "
        "SELECT 3, $3, workflow, id, $2, $4 FROM workflow_run WHERE id = $1",
        e.run_id, e.step_key, "step attempt failed: " + error, e.attempt);
    tx.exec(kNotifyWake);
    tx.commit();
    return true;
  });
}

namespace {

// How every run command starts, in its transaction: `before` (which may refuse), then the run's
// row locked. Returns the run's status, or the result to answer at once.
std::variant<std::string, Store::CommandResult> lock_run(Store::Impl& impl, pqxx::work& tx,
                                                         std::int64_t run_id,
                                                         const Store::BeforeCommand& before,
                                                         std::string* message) {
  if (before) {
    TxSql sql(tx, &impl);
    if (!before(sql)) return Store::CommandResult::kConflict;
  }
  auto run = tx.exec_params("SELECT status FROM workflow_run WHERE id = $1 FOR UPDATE", run_id);
  if (run.empty()) {
    *message = "run " + std::to_string(run_id) + " not found";
    return Store::CommandResult::kNotFound;
  }
  return std::string(run[0][0].c_str());
}

}  // namespace

Store::CommandResult Store::signal(std::int64_t run_id, const std::string& name,
                                   const Json& payload, std::string* message,
                                   const BeforeSignal& before) {
  return translate([&] {
    pqxx::work tx(impl_->conn);
    if (before) {
      TxSql sql(tx, impl_.get());
      if (!before(sql)) return CommandResult::kConflict;
    }
    // Locks the run, then wakes the waiting step or keeps the signal (schema/0013).
    const std::string outcome =
        tx.exec_prepared(impl_->prepare("signal", "SELECT run_signal_deliver($1, $2, $3::jsonb)"),
                         run_id, name, payload.dump())[0][0]
            .c_str();
    if (outcome == "not_found") {
      *message = "run " + std::to_string(run_id) + " not found";
      return CommandResult::kNotFound;
    }
    if (outcome.rfind("ended:", 0) == 0) {
      *message =
          "run " + std::to_string(run_id) + " is " + outcome.substr(6) + "; it takes no signals";
      return CommandResult::kConflict;
    }
    *message = outcome;  // "delivered", or "stored" for the step that will wait for it
    tx.commit();
    return CommandResult::kOk;
  });
}

Store::CommandResult Store::cancel(std::int64_t run_id, std::string* message,
                                   const BeforeCommand& before) {
  return translate([&] {
    pqxx::work tx(impl_->conn);
    auto locked = lock_run(*impl_, tx, run_id, before, message);
    if (auto* refused = std::get_if<CommandResult>(&locked)) return *refused;
    const std::string status = std::get<std::string>(locked);
    if (status == "succeeded" || status == "cancelled") {
      *message = "run " + std::to_string(run_id) + " is already " + status;
      return CommandResult::kConflict;
    }
    // A step still running loses its lease with this update: its finisher then changes nothing.
    tx.exec_params(
        "UPDATE step_run SET status = 'cancelled', lease_owner = NULL, finished_at = now() "
        "WHERE run_id = $1 AND status IN ('pending', 'ready', 'running', 'retrying', 'waiting', "
        "'failed')",
        run_id);
    tx.exec_params(
        "UPDATE workflow_run SET status = 'cancelled', finished_at = now() WHERE id = $1", run_id);
    history(tx, run_id, "cancelled", std::nullopt, std::nullopt, std::nullopt, std::nullopt);
    tx.commit();
    *message = "cancelled";
    return CommandResult::kOk;
  });
}

Store::CommandResult Store::retry_run(std::int64_t run_id, std::string* message,
                                      const BeforeCommand& before) {
  return translate([&] {
    pqxx::work tx(impl_->conn);
    auto locked = lock_run(*impl_, tx, run_id, before, message);
    if (auto* refused = std::get_if<CommandResult>(&locked)) return *refused;
    const std::string status = std::get<std::string>(locked);
    if (status != "failed") {
      *message = "run " + std::to_string(run_id) + " is " + status + "; only failed runs retry";
      return CommandResult::kConflict;
    }
    // Only the failed steps run again; succeeded steps keep their checkpointed output.
    auto steps = tx.exec_params(
        // Attempt numbers keep growing (they fence off late finishers); the step gets another
        // full allowance of attempts instead.
        "UPDATE step_run SET status = 'ready', max_attempts = attempt + max_attempts, "
        "run_at = now(), error = NULL, finished_at = NULL "
        "WHERE run_id = $1 AND status = 'failed' RETURNING step_key",
        run_id);
    tx.exec_params(
        "UPDATE workflow_run SET status = 'running', finished_at = NULL, error = NULL "
        "WHERE id = $1",
        run_id);
    for (const auto& s : steps)
      history(tx, run_id, "retried", std::string(s[0].c_str()), std::nullopt, std::nullopt,
              Json{{"by", "operator"}});
    tx.exec(kNotifyWake);
    tx.commit();
    *message = std::to_string(steps.size()) + " step(s) requeued";
    return CommandResult::kOk;
  });
}

}  // namespace chartflow::store
