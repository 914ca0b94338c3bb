// The worker's side of the queue: claiming due steps, keeping their leases alive, and the
// timers and expiries that put steps back (the idle engine's probe, due waits, lost leases).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

TimePoint from_epoch_ms(double ms) {
  return TimePoint(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
}

// The claim (step_claim, schema/engine/0002_queue.sql) returns every column the worker needs to run
// the step, so it sends no second query (its due time for a span's queue wait and its run's
// reprocess flags too, 0017_claim_rerun_flags.sql); the event body is not among them: workers
// cache it by id.
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

}  // namespace

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
    c.ready_at = from_epoch_ms(row.at("c_run_at_ms").get<double>());
    if (const auto& rerun = row.at("c_rerun"); !rerun.is_null()) c.rerun = rerun;
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<ClaimedStep> Store::claim(const std::string& owner, int limit,
                                      std::chrono::milliseconds lease, bool include_keyed) {
  return translate(*impl_, [&] {
    // One statement that commits by itself (asynchronously, see the function): a transaction
    // around it would cost three more round trips on every claim.
    pqxx::nontransaction tx(impl_->conn);
    return claim_in(*impl_, tx, owner, limit, lease, include_keyed, true);
  });
}

void Store::set_claim_scope(const std::vector<std::string>& handlers, bool only) {
  translate(*impl_, [&] {
    // Session settings that step_claim reads (schema/engine/0008_fair_claim.sql), made outside
    // any transaction, whose rollback would undo them.
    pqxx::nontransaction tx(impl_->conn);
    const std::string names = Json(handlers).dump();
    tx.exec_params(
        "SELECT set_config('chartflow.claim_only', $1, false), "
        "set_config('chartflow.claim_except', $2, false)",
        only ? names : std::string(), only ? std::string() : names);
  });
}

namespace {

Json attempts_json(const std::vector<StepAttempt>& steps) {
  Json out = Json::array();
  for (const auto& s : steps)
    out.push_back(Json{{"run_id", s.run_id}, {"step_key", s.step_key}, {"attempt", s.attempt}});
  return out;
}

}  // namespace

int Store::heartbeat(const std::string& owner, std::chrono::milliseconds lease,
                     const std::vector<StepAttempt>& in_flight) {
  if (in_flight.empty()) return 0;
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    tx.exec("SET LOCAL synchronous_commit = off");  // a lost renewal only shortens a lease
    // SKIP LOCKED: rows our own open batch has just finished are locked by it; waiting for them
    // would stall the heartbeat until the batch commits and let the other leases lapse.
    auto r = tx.exec_params(
        "UPDATE step_run s SET lease_expires_at = now() + $2 * interval '1 millisecond' "
        "FROM (SELECT s.run_id, s.step_key FROM step_run s JOIN jsonb_to_recordset($3::jsonb) "
        "AS f(run_id bigint, step_key text, attempt int) ON s.run_id = f.run_id AND s.step_key "
        "= f.step_key AND s.attempt = f.attempt WHERE s.lease_owner = $1 AND s.status = "
        "'running' AND s.lease_expires_at IS NOT NULL FOR UPDATE OF s SKIP LOCKED) mine "
        "WHERE s.run_id = mine.run_id AND s.step_key = mine.step_key",
        owner, static_cast<std::int64_t>(lease.count()), attempts_json(in_flight).dump());
    tx.commit();
    return static_cast<int>(r.affected_rows());
  });
}

int Store::release_steps(const std::string& owner, const std::vector<StepAttempt>& steps,
                         const std::string& reason) {
  if (steps.empty()) return 0;
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    // As a lost lease: the attempt number grows (it fences off a late finisher), and so does
    // max_attempts, so the step keeps what it had left.
    auto r = tx.exec_params(
        "UPDATE step_run s SET status = 'ready', run_at = now(), lease_owner = NULL, "
        "max_attempts = s.max_attempts + 1 FROM jsonb_to_recordset($2::jsonb) "
        "AS f(run_id bigint, step_key text, attempt int) WHERE s.run_id = f.run_id "
        "AND s.step_key = f.step_key AND s.attempt = f.attempt AND s.lease_owner = $1 "
        "AND s.status = 'running' RETURNING s.run_id, s.step_key, s.attempt",
        owner, attempts_json(steps).dump());
    for (const auto& row : r)
      history(tx, row[0].as<std::int64_t>(), "lease_expired", std::string(row[1].c_str()),
              row[2].as<int>(), std::nullopt, Json{{"reason", reason}});
    if (!r.empty()) tx.exec(kNotifyWake);
    tx.commit();
    return static_cast<int>(r.size());
  });
}

int Store::reclaim_all_running(const std::string& reason) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    auto r = tx.exec(
        "UPDATE step_run SET status = 'ready', run_at = now(), lease_owner = NULL, "
        "max_attempts = max_attempts + 1 WHERE status = 'running' AND lease_expires_at IS NOT NULL "
        "RETURNING run_id, step_key, attempt");
    for (const auto& row : r)
      history(tx, row[0].as<std::int64_t>(), "lease_expired", std::string(row[1].c_str()),
              row[2].as<int>(), std::nullopt, Json{{"reason", reason}});
    if (!r.empty()) tx.exec(kNotifyWake);
    tx.commit();
    return static_cast<int>(r.size());
  });
}

Probe Store::probe() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    // The idle engine's only query: when is the next thing due? (Every running step has a
    // lease; saying so lets the running steps' partial index serve, schema/engine/0001_runs.sql.)
    auto r = tx.exec(
        "SELECT extract(epoch FROM (SELECT min(run_at) FROM step_run WHERE status IN "
        "('ready', 'retrying'))) * 1000, "
        "extract(epoch FROM (SELECT min(wait_until) FROM step_run WHERE status = 'waiting')) * "
        "1000, "
        "extract(epoch FROM (SELECT min(least(lease_expires_at, deadline_at)) FROM step_run "
        "WHERE status = 'running' AND lease_expires_at IS NOT NULL)) * 1000, "
        "extract(epoch FROM now()) * 1000, "
        "extract(epoch FROM (SELECT min(due_at) FROM debounce_pending)) * 1000");
    Probe p;
    if (!r[0][0].is_null()) p.next_due = from_epoch_ms(r[0][0].as<double>());
    if (!r[0][1].is_null()) p.next_wait = from_epoch_ms(r[0][1].as<double>());
    if (!r[0][2].is_null()) p.next_expiry = from_epoch_ms(r[0][2].as<double>());
    p.now = from_epoch_ms(r[0][3].as<double>());
    if (!r[0][4].is_null()) p.next_debounce = from_epoch_ms(r[0][4].as<double>());
    return p;
  });
}

int Store::fire_due_waits() {
  return translate(*impl_, [&] {
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
          "UPDATE workflow_run SET status = 'running' WHERE id = $1 AND status = 'waiting' "
          "AND NOT EXISTS (SELECT 1 FROM step_run WHERE run_id = $1 AND status = 'waiting')",
          row[0].as<std::int64_t>());
    }
    tx.commit();
    return static_cast<int>(r.size());
  });
}

std::vector<Expired> Store::expired_steps(int limit) {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    std::vector<Expired> out;
    for (const auto& row : tx.exec_params(
             // A deadline that passed after the lease lapsed (a frozen database, a dead worker)
             // is the lost worker's, not the step's: it costs no attempt.
             "SELECT s.run_id, s.step_key, s.attempt, s.max_attempts, r.workflow_version_id, "
             "s.deadline_at < now() AND s.lease_expires_at >= now() "
             "FROM step_run s JOIN workflow_run r ON r.id = s.run_id "
             // IS NOT NULL: the condition of the running steps' index
             // (schema/engine/0001_runs.sql).
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
  return translate(*impl_, [&] {
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
            "WHERE id = $1 AND status IN ('running', 'waiting', 'pending', 'parked') RETURNING id",
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

}  // namespace chartflow::store
