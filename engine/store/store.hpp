// One database session of the engine: every engine table is read and written through here.
// A Store owns one PostgreSQL connection and is used by one thread at a time; make one per
// thread (workers, dispatcher, each HTTP thread). All SQL of the engine lives in store/.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/run_migration.hpp"
#include "engine/handler.hpp"
#include "engine/migration.hpp"
#include "store/errors.hpp"
#include "store/types.hpp"

namespace chartflow::store {

class StepBatch;

class Store {
 public:
  explicit Store(const std::string& dsn);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Applies the engine's migrations (schema/engine/), then each module's set in the order given:
  // each migration once, recorded in schema_migration by (module, version). Safe when several
  // processes start together. Converts a database the numbered scheme from before modules
  // migrated completely. Returns how many were applied.
  int migrate(const std::vector<MigrationSet>& modules = {});

  WorkflowVersion register_workflow(const std::string& name, const std::string& content_hash,
                                    const Json& definition, const std::string& source_file);
  std::optional<WorkflowVersion> workflow_version(std::int64_t id);
  // Latest version of every workflow name.
  std::vector<WorkflowVersion> latest_workflows();
  Json list_workflows();  // every name with its versions and recent run counts

  // Stores the event and creates the planned runs in one transaction, then wakes workers.
  // `before` runs first in the same transaction (e.g. to store a chart revision); it may fill in
  // the event, and returns false to store nothing (the result is then a duplicate).
  using BeforeIngest = std::function<bool(Sql&, EventInput&)>;
  using PlanRuns = std::function<std::vector<RunPlan>(const EventInput&)>;
  IngestResult ingest(EventInput event, const PlanRuns& plan, const BeforeIngest& before = nullptr);
  // Many events in one transaction: all are stored or none.
  std::vector<IngestResult> ingest_batch(const std::vector<EventInput>& events,
                                         const PlanRuns& plan);

  // Schedules (runtime/scheduler): the last tick a schedule fired, shared by all processes. A
  // schedule without one records `now` and returns it.
  TimePoint schedule_last_tick(const std::string& key, const std::string& workflow, TimePoint now);
  // Stores the tick events (each deduplicated by its key) and advances the schedule's last tick
  // to `through`, in one transaction.
  std::vector<IngestResult> fire_ticks(const std::string& key, const std::vector<EventInput>& ticks,
                                       TimePoint through, const PlanRuns& plan);

  // Claims due steps: unkeyed first, then (include_keyed) those under a concurrency key.
  // Each comes with the outputs of the run's succeeded steps.
  std::vector<ClaimedStep> claim(const std::string& owner, int limit,
                                 std::chrono::milliseconds lease, bool include_keyed = true);
  // Which steps this session's claims take (claim, and the one in a batch's commit), by handler
  // name: only `handlers` (only = true) or all but them. Holds for the session; a Store never
  // scoped claims every step.
  void set_claim_scope(const std::vector<std::string>& handlers, bool only);
  // Renews the leases of `in_flight`, the attempts this owner is running right now, and no
  // others: a step it claimed and lost track of (a batch on a broken connection) must lapse.
  int heartbeat(const std::string& owner, std::chrono::milliseconds lease,
                const std::vector<StepAttempt>& in_flight);
  // Returns every running step owned by another (dead) instance to the queue now. A crash is not
  // the step's fault: each keeps the attempts it had left.
  int reclaim_all_running(const std::string& reason);
  // Returns `steps`, claimed by `owner` but not run to an outcome (their batch lost its
  // connection), to the queue now, at no cost in attempts.
  int release_steps(const std::string& owner, const std::vector<StepAttempt>& steps,
                    const std::string& reason);

  std::unique_ptr<StepBatch> begin_batch();
  // False once the connection broke: nothing more can be sent on it.
  bool connected() const;

  Probe probe();
  int fire_due_waits();
  // Starts up to `limit` due debounced starts (schema/engine/0013_debounce.sql), each in the
  // transaction that deletes its pending row: once, whichever process calls first.
  std::vector<DebouncedStart> start_due_debounced(int limit);
  // Pending debounced starts per workflow: {"name": n}.
  Json debounce_pending_counts();
  std::vector<Expired> expired_steps(int limit);
  // Requeue or fail one expired step (guarded by attempt so a late finisher loses); false when
  // the step had moved on meanwhile. When this fails the run and `on_run_end` is set, the
  // run-end event is emitted in the same transaction (see StepBatch::emit_run_end).
  bool expire_step(const Expired& e, std::optional<std::chrono::milliseconds> retry_after,
                   const std::string& error, const PlanRuns& on_run_end = nullptr);
  // Parks one expired step instead (its last attempt timed out and its definition says
  // on_exhausted: park), guarded by attempt like expire_step; its run is parked with it.
  bool park_expired(const Expired& e, const std::string& error);

  std::optional<Json> event_body(std::int64_t event_id);
  // Bodies of several events, with their traces, in one round trip (missing ids are absent).
  std::map<std::int64_t, StoredEvent> event_bodies(const std::vector<std::int64_t>& ids);
  // For the spans of traces (store/trace_store.cpp), read only when spans are exported: the
  // times of ended runs (when a step became due comes with its claim).
  struct RunTimes {
    std::int64_t run_id = 0;
    std::string workflow, status;
    TimePoint started, finished;
  };
  std::vector<RunTimes> run_times(const std::vector<std::int64_t>& run_ids);

  enum class CommandResult { kOk, kNotFound, kConflict };
  // `before` runs first in the same transaction (e.g. recording a review decision or an audit
  // record) and may reject the command by returning false: nothing is then written.
  using BeforeCommand = std::function<bool(Sql&)>;
  using BeforeSignal = BeforeCommand;
  CommandResult signal(std::int64_t run_id, const std::string& name, const Json& payload,
                       std::string* message, const BeforeSignal& before = nullptr);
  CommandResult cancel(std::int64_t run_id, std::string* message,
                       const BeforeCommand& before = nullptr);
  CommandResult retry_run(std::int64_t run_id, std::string* message,
                          const BeforeCommand& before = nullptr);

  // An operator's decision about a parked step (schema/engine/0007_park.sql): retry it with a
  // fresh budget of `attempts`, skip it (`reason` required; its dependents then run) or fail it
  // (and its run, emitting the run-end event). In one transaction that locks the run first; a
  // step that is not parked is a conflict. `ended` comes back "succeeded" or "failed" when this
  // ended the run.
  enum class ParkedAction { kRetry, kSkip, kFail };
  struct ParkedCommand {
    std::string step;
    ParkedAction action = ParkedAction::kRetry;
    std::string reason;
    int attempts = 1;
    PlanRuns on_succeeded, on_failed;  // run-end event planners (nullptr: none listens)
    std::string ended, workflow;       // set when the command ended the run
  };
  CommandResult act_on_parked(std::int64_t run_id, ParkedCommand& command, std::string* message,
                              const BeforeCommand& before = nullptr);
  // Pausing (schema/engine/0012_pause.sql): while a workflow or a run is paused no step of it
  // is claimed; events still start runs. `by` is who paused (an audit actor), `reason` optional.
  // Pausing what is paused, or resuming what is not, is a conflict; so is pausing an ended run.
  // A workflow no version of which was ever loaded is not found.
  struct PauseCommand {
    std::string by, reason;
    int in_flight = 0;  // out: steps still running, which finish as usual
    int released = 0;   // out (resume): held steps given back to the queue
  };
  CommandResult pause_workflow(const std::string& workflow, PauseCommand& command,
                               std::string* message, const BeforeCommand& before = nullptr);
  CommandResult resume_workflow(const std::string& workflow, PauseCommand& command,
                                std::string* message, const BeforeCommand& before = nullptr);
  CommandResult pause_run(std::int64_t run_id, PauseCommand& command, std::string* message,
                          const BeforeCommand& before = nullptr);
  CommandResult resume_run(std::int64_t run_id, PauseCommand& command, std::string* message,
                           const BeforeCommand& before = nullptr);
  // Each paused workflow with its queue: [{"workflow", "paused_at", "paused_by", "reason",
  // "queued_runs", "queued_steps", "running_steps"}], and the count of paused runs.
  Json pauses();
  // The workflow version a run started with (nullopt: no such run).
  std::optional<std::int64_t> run_workflow_version(std::int64_t run_id);
  // Moving runs to another version of their workflow (store/run_migration_store.cpp).
  std::optional<WorkflowVersion> workflow_version_of(const std::string& name, int version);
  // Runs of `workflow` at version id `version_id` that have not ended, by id, after `after`.
  std::vector<std::int64_t> unended_runs_at(const std::string& workflow, std::int64_t version_id,
                                            std::int64_t after, int limit);
  struct RunMove {
    std::int64_t from_id = 0, to_id = 0;
    std::string to_label;                  // "version 2", for refusals
    std::vector<core::TargetStep> target;  // the new version's steps, in its order
    core::StepRenames renames;
    bool dry_run = true;
    // The new version's steps as they would be created for the run's event (concurrency keys
    // come from its body); called only when moving.
    std::function<std::vector<StepPlan>(const Json& event_body)> steps_for;
    Json detail;  // for the run's 'migrated' history entry
  };
  // Plans moving one run (core::plan_run_migration) and, unless dry_run, moves it: in one
  // transaction that runs `before`, locks the run, then its steps, and plans on what it locked.
  core::RunMigrationPlan move_run(std::int64_t run_id, const RunMove& move,
                                  const BeforeCommand& before = nullptr);
  // Parked steps, longest parked first, with their runs: {"steps": [...], "total": n}.
  Json parked_steps(int limit);
  // How many steps are parked per workflow and step: [{"workflow", "step", "count"}].
  Json parked_counts();

  struct RunFilter {
    std::optional<std::string> workflow, status, subject;
    std::optional<std::string> since, until;  // RFC 3339
    std::optional<std::int64_t> after;        // paging cursor: runs with id < after
    int limit = 50;
  };
  Json list_runs(const RunFilter& f);
  std::optional<Json> get_run(std::int64_t run_id);

  // Ready/running/waiting step counts and the age of the oldest ready step (for metrics).
  Json queue_stats();
  void record_backup(const BackupRecord& backup);
  // For metrics: {"last_backup" (epoch s, 0: none), "archiving", "archived", "failed",
  // "last_archived", "last_failed" (epoch s, 0: never)} from backup_history and pg_stat_archiver.
  Json backup_stats();

  void write_logs(const std::vector<LogRecord>& records);
  struct LogFilter {
    int min_level = 0;
    std::optional<std::string> since, until, workflow, step, text;
    std::optional<std::int64_t> run_id, after;
    int limit = 100;
    // Set: the message and fields of handler stderr lines (fields.stream = "stderr") of runs
    // whose event type starts with this are replaced by a notice.
    std::optional<std::string> redact_stderr_of_events;
  };
  Json query_logs(const LogFilter& f);

  // Runs `fn` in a transaction with the handler-facing Sql interface (for domain modules).
  void with_sql(const std::function<void(Sql&)>& fn);
  // Runs `fn` outside a transaction: each statement commits by itself. For a single read (a
  // token or session lookup on every request), where BEGIN and COMMIT would be two of the three
  // round trips.
  void with_autocommit_sql(const std::function<void(Sql&)>& fn);

  // LISTENs on this schema's wake-up channel (every state change that makes work due notifies
  // it).
  // `ignore_origin`: wake-ups sent with this origin (set_wake_origin) are not counted: the
  // process that sent them has woken its own workers already.
  void listen_wakeups(const std::string& ignore_origin = "");
  // Origin sent with the wake-ups of ingest and ingest_batch until cleared with "".
  void set_wake_origin(std::string origin);
  // Waits up to `timeout` for a notification; true when one arrived.
  bool await_notification(std::chrono::milliseconds timeout);
  int socket() const;
  // Store calls made by this process so far (each is one transaction); for tests that prove an
  // idle engine stays quiet.
  static std::uint64_t statements_issued();
  // Observes the duration of every store call (one transaction) and of each step-batch
  // statement, by kind: the Store method or batch statement ("claim", "finish_step"), never an
  // id. For metrics, without the store knowing them. Set once at start-up, before threads use
  // stores; the observer must be thread-safe.
  using QueryObserver = std::function<void(std::string_view kind, double seconds)>;
  static void set_query_observer(QueryObserver observer);
  // How long one call may wait on the server before it is cut off as a lost connection (see
  // call_watchdog.hpp); the server's statement_timeout is set 5 s below it. For connections
  // made from now on. Default 35 s.
  static void set_call_timeout(std::chrono::milliseconds timeout);
  static std::chrono::milliseconds call_timeout();
  // One round trip, cut off after `budget`: is the server answering on this connection?
  void ping(std::chrono::milliseconds budget);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// One transaction that finishes several claimed steps. Each step's handler writes through
// sql_for(step); its writes are kept only when the step's outcome is applied.
class StepBatch {
 public:
  virtual ~StepBatch() = default;
  // Dependents this batch's commits have made ready so far, for any worker's claim.
  virtual int promoted() const = 0;
  // The step's way to write in the batch's transaction, opened (with a savepoint when earlier
  // steps' writes must survive this one) on first use.
  virtual Sql& sql() = 0;
  // Discards whatever the current step wrote through sql().
  virtual void discard_step_writes() = 0;
  // Each finish_* returns false when the lease was lost (the step is no longer ours); for
  // finish_done that is found at commit (see commit), so it returns true.
  virtual bool finish_done(const ClaimedStep& s, const std::string& owner, const Json& output,
                           bool skipped) = 0;
  virtual bool finish_retry(const ClaimedStep& s, const std::string& owner,
                            std::chrono::milliseconds after, const std::string& error) = 0;
  virtual bool finish_failed(const ClaimedStep& s, const std::string& owner,
                             const std::string& error) = 0;
  // The step's attempts ran out and its definition says park: it waits for an operator, holding
  // no lease, and its run is parked. Like a retry, the attempt's own writes are discarded.
  virtual bool finish_parked(const ClaimedStep& s, const std::string& owner,
                             const std::string& error) = 0;
  virtual bool finish_wait(const ClaimedStep& s, const std::string& owner,
                           const std::optional<std::string>& signal,
                           const std::optional<TimePoint>& until) = 0;
  // A for_each step fans out (core/for_each.hpp): `elements` become ready steps of its run, and
  // the step itself goes back to pending, needing them all, its attempt given back; claimed
  // again once they are done, it comes with wake {"kind": "fan_in", "count": n}.
  virtual bool finish_fanned_out(const ClaimedStep& s, const std::string& owner,
                                 const std::vector<StepPlan>& elements) = 0;
  // A child workflow step starts its child (docs/workflows.md, "Child workflows"): `child`'s
  // event and the run `plan` gives it, marked as this step attempt's child, and the step waits
  // for it, its attempt given back; the child's end wakes it with wake {"kind": "child",
  // "run_id", "status", "output"} (schema/engine/0015_child_runs.sql). Sets `child_run_id`.
  virtual bool finish_child_started(const ClaimedStep& s, const std::string& owner,
                                    const EventInput& child, const Store::PlanRuns& plan,
                                    std::int64_t& child_run_id) = 0;
  virtual void log(const LogRecord& r) = 0;
  // The run's status after the last finish_failed: "failed" when that step ended the run, else
  // something else (runs that succeed end at commit: succeeded_runs).
  virtual const std::string& last_run_status() const = 0;
  // Emits the run-end event (kRunSucceededEvent / kRunFailedEvent) of a run this batch has just
  // ended, starting the runs `plan` gives it; they commit with the batch.
  virtual void emit_run_end(std::int64_t run_id, const Store::PlanRuns& plan) = 0;
  // Steps are finished together in one statement at commit (lease-checked there). With a plan,
  // each run those finishes end successfully emits its run-end event (kRunSucceededEvent),
  // starting the runs `plan` gives it, in the same commit.
  virtual void emit_succeeded_with(const Store::PlanRuns& plan) = 0;
  // Commits, claiming up to `claim_next` due steps for `owner` in the same transaction. Throws
  // LeaseLost, after rolling everything back, when a step that wrote had lost its lease.
  virtual std::vector<ClaimedStep> commit(const std::string& owner, int claim_next,
                                          std::chrono::milliseconds lease, bool include_keyed) = 0;
  // Workflows of the runs that succeeded with this batch's finished steps (known once
  // committed: finishes that wrote nothing else go to the database together at commit).
  virtual const std::vector<std::string>& succeeded_runs() const = 0;
  // Their ids, in the same order.
  virtual const std::vector<std::int64_t>& succeeded_run_ids() const = 0;
  // The runs this batch's finish_failed ended (final once the batch has committed).
  virtual const std::vector<std::int64_t>& failed_run_ids() const = 0;
};

}  // namespace chartflow::store
