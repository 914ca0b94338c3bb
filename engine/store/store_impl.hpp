// Internals shared by the store's translation units. Only store/ includes this (and libpqxx).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "store/call_watchdog.hpp"
#include "store/network_timeouts.hpp"
#include "store/store.hpp"

namespace chartflow::store {

// One wake-up channel per schema, so deployments (and tests) sharing a database do not wake
// each other's workers.
inline constexpr const char* kNotifyWake =
    "SELECT pg_notify('chartflow_wakeup_' || current_schema(), '')";

// RFC 3339 UTC with milliseconds, as every API time is.
#define CF_TS(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

// Wake-up with the sender's origin as payload ('' when the sender woke no workers itself).
inline constexpr const char* kNotifyWakeFrom =
    "SELECT pg_notify('chartflow_wakeup_' || current_schema(), $1)";

// LISTEN through libpqxx's receiver; a notification is only a hint to look for work, and one
// that this process sent after waking its own workers is not even that.
class WakeReceiver : public pqxx::notification_receiver {
 public:
  WakeReceiver(pqxx::connection_base& c, const std::string& channel, std::string ignore_origin)
      : pqxx::notification_receiver(c, channel), ignore_(std::move(ignore_origin)) {}
  void operator()(const std::string& payload, int) override {
    if (ignore_.empty() || payload != ignore_) ++relevant;
  }
  int relevant = 0;

 private:
  std::string ignore_;
};

// For the few calls that lift the statement limit (migrations, pruning).
inline constexpr std::chrono::milliseconds kLongCallTimeout{3'600'000};

struct Store::Impl {
  explicit Impl(const std::string& dsn);
  int fd() const { return conn.is_open() ? conn.sock() : -1; }
  pqxx::connection conn;
  // How long a call may wait before the watchdog cuts it off (call_watchdog.hpp): longer than
  // the server's own statement_timeout, so a live server always answers first.
  std::chrono::milliseconds call_timeout;
  std::vector<std::unique_ptr<WakeReceiver>> receivers;
  std::set<std::string> prepared;
  std::string wake_origin;                                     // see Store::set_wake_origin
  std::unordered_map<std::string, std::string> auto_prepared;  // statement text -> name
  int auto_names = 0;  // never reused, even for a statement whose preparation failed

  // Hot statements are prepared once per connection: planning them on every call cost more CPU
  // than running them.
  const std::string& prepare(const std::string& name, const std::string& sql) {
    if (!prepared.count(name)) {
      conn.prepare(name, sql);
      prepared.insert(name);
    }
    return name;
  }
};

void count_statement();

// Runs `fn`, translating libpqxx failures into the engine's three kinds.
template <typename Fn>
auto translate_errors(Fn& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const pqxx::broken_connection& e) {
    throw TransientError(std::string("database connection lost: ") + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    throw TransientError(std::string("commit outcome unknown: ") + e.what());
  } catch (const pqxx::serialization_failure& e) {
    throw TransientError(e.what());
  } catch (const pqxx::deadlock_detected& e) {
    throw TransientError(e.what());
  } catch (const pqxx::unique_violation& e) {
    throw ConflictError(e.what());
  } catch (const pqxx::sql_error& e) {
    throw FatalError(std::string(e.what()) + " [query: " + e.query().substr(0, 200) + "]");
  }
}

// Times one store call or batch statement for the query observer (Store::set_query_observer).
class QueryTimer {
 public:
  explicit QueryTimer(const char* kind) : kind_(kind), started_(std::chrono::steady_clock::now()) {}
  ~QueryTimer();
  QueryTimer(const QueryTimer&) = delete;
  QueryTimer& operator=(const QueryTimer&) = delete;

 private:
  const char* kind_;
  std::chrono::steady_clock::time_point started_;
};

// translate_errors, counted and timed. `counted`: false for calls that send nothing to the server
// (waiting for notifications). `kind` defaults to the calling Store method's name, which is what
// the query metrics are labelled with.
template <typename Fn>
auto translate(Fn&& fn, bool counted = true, const char* kind = __builtin_FUNCTION())
    -> decltype(fn()) {
  if (!counted) return translate_errors(fn);
  count_statement();
  QueryTimer timer(kind);
  return translate_errors(fn);
}

// translate, under the connection's call deadline.
template <typename Fn>
auto translate(Store::Impl& impl, Fn&& fn, bool counted = true,
               const char* kind = __builtin_FUNCTION()) -> decltype(fn()) {
  CallDeadline deadline(impl.fd(), impl.call_timeout);
  return translate(std::forward<Fn>(fn), counted, kind);
}

// Nullable parameters for exec_params: libpqxx treats a null const char* as SQL NULL.
inline const char* opt(const std::optional<std::string>& v) { return v ? v->c_str() : nullptr; }

Json rows_to_json(const pqxx::result& r);

// Log records as the JSON array the log_record inserts read with jsonb_to_recordset.
Json log_records_json(const std::vector<LogRecord>& records);

// The handler-facing Sql over a libpqxx transaction (optionally through a lazily opened
// savepoint, see StepBatch).
class TxSql : public Sql {
 public:
  // With `impl`, statements are prepared on the connection the first time they are seen (up to
  // kMaxAutoPrepared of them): a worker runs the same few handler statements for every step,
  // and parsing and planning them each time cost about as much CPU as running them.
  explicit TxSql(pqxx::transaction_base& tx, Store::Impl* impl = nullptr) : tx_(tx), impl_(impl) {}
  Json query(std::string_view statement,
             const std::vector<std::optional<std::string>>& params) override;

 private:
  pqxx::transaction_base& tx_;
  Store::Impl* impl_;
};

// A debounced plan's pending start, for the stored event `event_id` (store/debounce_store.cpp).
struct PendingStart {
  std::int64_t event_id = 0;
  std::optional<std::string> subject;
  RunPlan plan;       // plan.debounce is set
  std::string steps;  // the run's steps JSON
};
// Several events' pending starts in one transaction are upserted together, in (workflow, key)
// order: two transactions locking the same rows in opposite orders would deadlock.
using PendingStarts = std::vector<PendingStart>;

// Stores one event and its runs inside `tx`. The caller commits and notifies, unless
// `notify_origin` is given and *notified comes back true: then the wake-up (with that origin)
// went out in the same statement as the run. With `deferred`, debounced starts are added to it
// for debounce_all; without, upserted at once.
IngestResult ingest_in(Store::Impl& impl, pqxx::transaction_base& tx, const EventInput& event,
                       const Store::PlanRuns& plan, const std::string* notify_origin = nullptr,
                       bool* notified = nullptr, PendingStarts* deferred = nullptr);

// ingest_in for each event, appending to `out`; true when any started a run.
bool ingest_each(Store::Impl& impl, pqxx::transaction_base& tx,
                 const std::vector<EventInput>& events, const Store::PlanRuns& plan,
                 std::vector<IngestResult>& out);

// Inserts each pending start, or moves it on to its later event, in (workflow, key) order
// (arrival order within a key, so the last event wins).
void debounce_all(Store::Impl& impl, pqxx::transaction_base& tx, PendingStarts starts);

// Stores the run-end event (workflow.succeeded / workflow.failed) of run `run_id`, which `tx`
// has just finished, and starts the runs `plan` gives it. Returns true when runs were started
// (the caller notifies). Past kMaxChainDepth nothing is emitted.
bool emit_run_end(Store::Impl& impl, pqxx::transaction_base& tx, std::int64_t run_id,
                  const Store::PlanRuns& plan);

// The CTE that inserts new runs' steps from their planned steps (a jsonb array as ingest's
// steps_json builds it): `from` names the runs, `run_id` and `steps` are expressions over it.
// Every way a run starts (an event, a batch, a debounced start) builds its steps with this.
inline std::string insert_steps_cte(const std::string& from, const std::string& run_id,
                                    const std::string& steps) {
  return " steps AS (INSERT INTO step_run (run_id, step_key, handler, status, needs, "
         "  pending_needs, max_attempts, timeout_ms, concurrency_key, concurrency_limit) SELECT " +
         run_id +
         ", x.step_key, x.handler, CASE WHEN x.pending_needs = 0 THEN 'ready' ELSE 'pending' "
         "  END, x.needs, x.pending_needs, x.max_attempts, x.timeout_ms, x.concurrency_key, "
         "  x.concurrency_limit FROM " +
         from + ", jsonb_to_recordset(" + steps +
         ") AS x(step_key text, handler text, needs jsonb, pending_needs int, max_attempts int, "
         "  timeout_ms int, concurrency_key text, concurrency_limit int)),";
}

Json exec_json(pqxx::transaction_base& tx, std::string_view statement,
               const std::vector<std::optional<std::string>>& params);

// Appends one entry to run `run_id`'s history (run_history) in `tx`; the optional parts are
// stored as NULL when absent.
inline void history(pqxx::transaction_base& tx, std::int64_t run_id, const char* type,
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

// How every run command starts, in its transaction: `before` (which may refuse), then the run's
// row locked. Returns the run's status, or the result to answer at once (with *message set).
std::variant<std::string, Store::CommandResult> lock_run(Store::Impl& impl, pqxx::work& tx,
                                                         std::int64_t run_id,
                                                         const Store::BeforeCommand& before,
                                                         std::string* message);

// The claimed rows as step_claim returns them, one JSON object each (to_jsonb of its rows);
// step_commit hands back the next claim the same way.
std::vector<ClaimedStep> read_claimed(const Json& rows);

}  // namespace chartflow::store
