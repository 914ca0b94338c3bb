// The engine: a dispatcher thread (LISTEN wake-ups, timers, lease rescue, heartbeats) and a set
// of worker threads that claim due steps, run their handlers and commit each step's outcome.
// Also the single entry point for events and operator commands, so the API changes state only
// through the same path the workers use. start() once, drain() once; other methods are
// thread-safe.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/event_policy.hpp"
#include "core/trace.hpp"
#include "engine/handler.hpp"
#include "runtime/event_cache.hpp"
#include "runtime/reprocess.hpp"
#include "runtime/run_migration.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/store_pool.hpp"
#include "runtime/workflow_registry.hpp"
#include "store/retention_store.hpp"

namespace chartflow::runtime {

class TraceExporter;  // runtime/trace_export.hpp

// One worker thread per core and one more: a worker alternates between its handler and waiting
// on PostgreSQL, which (embedded) shares the cores, and the extra one fills those waits. More
// only add contention: on 2 cores, 3 workers ran the chart workflow a fifth faster than 8 and
// the engine benchmark faster than 4 or 8.
inline int default_workers() {
  const unsigned cores = std::thread::hardware_concurrency();
  return std::clamp(static_cast<int>(cores == 0 ? 1 : cores) + 1, 2, 32);
}
inline constexpr int kDefaultBatchSize = 16;
// Workers of each bulkhead (Handler::bulkhead): enough that a few hanging calls leave others
// going; each is a thread mostly asleep on a socket, and one database connection.
inline constexpr int kDefaultBulkheadWorkers = 4;
inline constexpr Millis kDefaultLease{15'000};
inline constexpr Millis kDefaultPollInterval{1'000};
inline constexpr int kDefaultPoolSize = 8;
// The event a child workflow's run starts from: {parent_run_id, parent_step, workflow, input,
// depth} (runtime/child_workflows.cpp).
inline constexpr const char* kChildWorkflowEvent = "workflow.child";

struct EngineSettings {
  std::string dsn;
  int workers = default_workers();  // 0: API only, no step execution in this process
  int batch_size = kDefaultBatchSize;
  Millis lease = kDefaultLease;
  Millis poll_interval = kDefaultPollInterval;
  int pool_size = kDefaultPoolSize;
  std::string instance_id;  // lease owner name; generated when empty
  // How long runs and logs are kept, and when finished runs move to the archive
  // (runtime/retention.cpp).
  store::RetentionPolicy retention;
  bool scheduler = true;  // fire schedule triggers from this process (tests drive it by hand)
  // Workers of each bulkhead named by a registered handler, besides `workers`; a bulkhead not
  // listed gets kDefaultBulkheadWorkers, and 0 runs its handlers in the general pool.
  std::map<std::string, int> bulkhead_workers;
  // Where the spans of runs and step attempts go (--otlp-endpoint); null: none are recorded,
  // and the workers do nothing for traces but hand each handler its run's trace id.
  std::shared_ptr<TraceExporter> traces;
};

// Observers for metrics; every field optional.
struct EngineHooks {
  std::function<void(const std::string& workflow)> run_started;
  std::function<void(const std::string& workflow, const std::string& step, double seconds,
                     const std::string& outcome)>
      step_finished;
  std::function<void(const std::string& workflow, const std::string& status)> run_finished;
  std::function<void(bool timed_out)> step_expired;
  std::function<void(const std::string& workflow, const std::string& step)> step_retried;
  // A debounced start began a run standing for `events` events; all but one were coalesced.
  std::function<void(const std::string& workflow, int events)> debounced_run_started;
};

// An event a door from outside may not create (a reserved type); the message names it.
struct EventRefused : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A workflow step as a new step row for an event with this body (runtime/engine.cpp).
store::StepPlan plan_step(const core::Workflow& wf, const core::Step& s, const Json& body);

class Engine {
 public:
  Engine(EngineSettings settings, std::shared_ptr<const HandlerRegistry> handlers,
         std::shared_ptr<WorkflowRegistry> workflows, EngineHooks hooks = {});
  ~Engine();

  void start();
  // Stops claiming, lets in-flight steps finish (their outcome is committed), then joins.
  void drain();
  bool draining() const { return stopping_.load(); }

  // Starts a run of every latest workflow whose trigger matches. `before` runs in the same
  // transaction (see Store::ingest).
  store::IngestResult ingest(store::EventInput event,
                             const store::Store::BeforeIngest& before = {});
  // Many events in one transaction (webhook batches, bulk loads).
  std::vector<store::IngestResult> ingest_batch(const std::vector<store::EventInput>& events);
  // What every door from outside (HTTP events and batches, Alertmanager, the drop folder) calls
  // instead: the same, but a reserved type throws EventRefused and stores nothing.
  store::IngestResult ingest_external(store::EventInput event,
                                      const store::Store::BeforeIngest& before = {});
  std::vector<store::IngestResult> ingest_batch_external(
      const std::vector<store::EventInput>& events);
  // Types the modules emit themselves (ModuleRegistry::reserve_event_type); call before start().
  void reserve_event_types(const std::vector<std::string>& patterns);
  const core::ReservedEventTypes& reserved_event_types() const { return reserved_; }
  // For event sources that store more than events in the same transaction: `fn` gets a pooled
  // store and the engine's run planner, and returns what it ingested; workers are then woken.
  using IngestFn =
      std::function<std::vector<store::IngestResult>(store::Store&, const store::Store::PlanRuns&)>;
  std::vector<store::IngestResult> ingest_with(const IngestFn& fn);

  // Run commands, through the same pooled stores the workers use, so the API changes run state
  // only here. `before` runs in the command's transaction (an audit record, a recorded decision)
  // and may refuse the command by returning false.
  using CommandResult = store::Store::CommandResult;
  CommandResult signal(std::int64_t run_id, const std::string& name, const Json& payload,
                       std::string* message, const store::Store::BeforeCommand& before = nullptr);
  CommandResult cancel(std::int64_t run_id, std::string* message,
                       const store::Store::BeforeCommand& before = nullptr);
  CommandResult retry(std::int64_t run_id, std::string* message,
                      const store::Store::BeforeCommand& before = nullptr);
  // An operator's decision about a parked step (Store::act_on_parked, in parked_steps.cpp): a
  // retry gives the step the attempt budget its definition sets; a skip needs a reason.
  CommandResult act_on_parked(std::int64_t run_id, const std::string& step,
                              store::Store::ParkedAction action, const std::string& reason,
                              std::string* message,
                              const store::Store::BeforeCommand& before = nullptr);

  // Pausing a workflow or one run, and resuming it (Store::pause_workflow and the rest, in
  // pause_commands.cpp). A resume wakes the workers for the steps it gives back.
  using PauseCommand = store::Store::PauseCommand;
  CommandResult pause_workflow(const std::string& workflow, PauseCommand& command,
                               std::string* message,
                               const store::Store::BeforeCommand& before = nullptr);
  CommandResult resume_workflow(const std::string& workflow, PauseCommand& command,
                                std::string* message,
                                const store::Store::BeforeCommand& before = nullptr);
  CommandResult pause_run(std::int64_t run_id, PauseCommand& command, std::string* message,
                          const store::Store::BeforeCommand& before = nullptr);
  CommandResult resume_run(std::int64_t run_id, PauseCommand& command, std::string* message,
                           const store::Store::BeforeCommand& before = nullptr);
  Json pauses();  // paused workflows with their queues, and how many runs are paused

  // Moves the unended runs of a workflow at one version to another, each in a transaction of
  // its own that runs `before_each` (with the run's id) first; a dry run only plans. Answers
  // {"workflow", "from", "to", "dry_run", "runs": [{"run_id", ...core::RunMigrationPlan}],
  // "candidates", "movable", "moved", "refused", "more"}. Throws MigrationRejected.
  using BeforeMove = std::function<bool(Sql&, std::int64_t run_id)>;
  Json migrate_runs(const RunMigrationRequest& request, const BeforeMove& before_each = nullptr);

  // Reprocessing runs (runtime/reprocess.cpp, issue #17 item 3). A dry run: how many runs and
  // charts the selection covers and, from each step's Handler::preview_rerun, what re-running
  // them would do outside the engine: {"dry_run", "workflow", "version", "runs", "charts",
  // "run_ids", "chart_ids", "previewed", "effects": [{"step", "effect", "action", "count",
  // "runs"}]}. Throws ReprocessRejected.
  Json reprocess_preview(const ReprocessRequest& request);
  // Creates the job (its runs resolved now) in a transaction that runs `before` with its id
  // first (the audit record); the dispatcher starts its runs in batches. Returns the job.
  using BeforeReprocess = std::function<void(Sql&, std::int64_t job_id, int total)>;
  Json start_reprocess(const ReprocessRequest& request, const std::string& by,
                       const BeforeReprocess& before = nullptr);
  std::optional<Json> reprocess_job(std::int64_t job_id);
  Json reprocess_jobs(int limit);
  // Stops the job's further batches (a batch being started finishes first).
  CommandResult cancel_reprocess(std::int64_t job_id, std::string* message,
                                 const store::Store::BeforeCommand& before = nullptr);
  // Starts the next batch of the oldest running job; returns how many runs it started, or -1
  // when no job was running. The dispatcher calls it; tests call it to step a job by hand.
  int reprocess_batch();

  // Retention (runtime/retention.cpp, issue #17 item 5). The dispatcher archives finished runs
  // each minute and expires hourly; this expires now, for the API and the CLI.
  const store::RetentionPolicy& retention() const { return settings_.retention; }
  // store::expire_partitions with the engine's policy; dry: nothing changes.
  Json expire_now(bool dry_run);

  // Reads for the API and the dashboard, each on a pooled connection.
  Json queue_stats();
  Json backup_stats();
  Json parked_steps(int limit);  // the parked view (Store::parked_steps)
  Json parked_counts();          // per workflow and step, for the gauge
  Json list_runs(const store::Store::RunFilter& filter);
  std::optional<Json> get_run(std::int64_t run_id);
  Json list_workflows();
  Json query_logs(const store::Store::LogFilter& filter);
  // For the engine's own modules whose statements are store functions over Sql (auth, audit, S3
  // objects, a module's tables): `fn` in one transaction on a pooled connection, or (read) as
  // statements that each commit by themselves, for a single read.
  void transaction(const std::function<void(Sql&)>& fn);
  void read(const std::function<void(Sql&)>& fn);
  StorePool::Stats pool_stats() { return pool_.stats(); }
  // True when the database answers a round trip within `budget` (waiting for a session
  // included); never waits much longer, whatever the server does.
  bool database_ready(Millis budget);
  WorkflowRegistry& workflows() { return *workflows_; }
  const HandlerRegistry& handlers() const { return *handlers_; }
  const std::string& instance_id() const { return settings_.instance_id; }
  int in_flight() const { return in_flight_.load(); }

  // Workflows whose trigger matches an event of this type and body.
  std::vector<WorkflowPtr> matching(const std::string& type, const Json& body) const;
  // True when some latest workflow has a trigger on this event type.
  bool listened(const std::string& type) const;

 private:
  void refuse_reserved(const std::string& type) const;
  // `pools`, when given, gains the bit of each pool a run's first steps run in.
  std::vector<store::RunPlan> plan_runs(const store::EventInput& ev,
                                        std::vector<std::string>* started,
                                        std::uint64_t* pools = nullptr) const;
  // The planner for a run-end event of this type, or nullptr when no workflow listens: then the
  // event is not stored at all, which keeps a run's end at one statement.
  store::Store::PlanRuns run_end_plan(const char* type) const;
  // After a step finished: emits the run-end event when that step ended the run.
  void emit_if_ended(store::StepBatch& batch, std::int64_t run_id) const;
  void dispatcher_loop();
  // The general pool, then one per bulkhead that a registered handler names and that has
  // workers (EngineSettings::bulkhead_workers).
  void build_pools();
  std::size_t pool_of(const std::string& handler) const;
  // A worker's connection, its claims scoped to its pool's steps.
  std::unique_ptr<store::Store> connect_worker(int worker) const;
  void worker_loop(int index);
  // Runs the steps in one transaction; its commit claims the next batch unless !claim_next.
  // After a batch rolled back: its steps (still claimed by this worker) one transaction each.
  // Steps it could not run to an outcome because the connection broke go back to the queue at
  // once, at no cost.
  void rerun_one_by_one(std::unique_ptr<store::Store>& store,
                        std::vector<store::ClaimedStep>& steps, int worker);
  // The attempts being run right now: the only ones the heartbeat renews.
  void track(const std::vector<store::ClaimedStep>& steps);
  void untrack(const std::vector<store::ClaimedStep>& steps);
  std::vector<store::StepAttempt> tracked();
  std::vector<store::ClaimedStep> run_batch(store::Store& store,
                                            std::vector<store::ClaimedStep>& steps, int worker,
                                            bool claim_next);
  // After a commit that made dependents ready: wakes the other pools that run one of them (the
  // commit's own claim took those of the worker's pool).
  void wake_dependents(const std::vector<store::ClaimedStep>& steps,
                       const std::vector<WorkflowPtr>& workflows, std::size_t own_pool);
  // `spans`: the attempt's span, for the caller to record once the batch has committed (a batch
  // rolled back and run again would otherwise export the same attempt twice).
  void execute(store::StepBatch& batch, const store::ClaimedStep& step, const WorkflowPtr& wf,
               const Json& event, std::vector<core::Span>& spans);
  // A child workflow step (runtime/child_workflows.cpp): starts its child, or, woken by the
  // child's end, succeeds with its outputs. Returns why the step fails for good, if it does.
  std::optional<std::string> child_step(store::StepBatch& batch, const store::ClaimedStep& step,
                                        const core::Step& def, const Json& event);
  // Tells hooks about the runs a committed batch finished.
  void report_succeeded(const store::StepBatch& batch) const;
  // Spans (runtime/engine_traces.cpp), only with EngineSettings::traces: an attempt's, added to
  // `out` as its handler returns; the root spans of the runs a batch ended, once it committed.
  void step_span(std::vector<core::Span>& out, const store::ClaimedStep& s, const core::Step& def,
                 const StepOutcome& outcome, TimePoint handler_start) const;
  // Hands the spans of a committed batch to the exporter.
  void record_spans(std::vector<core::Span>& spans) const;
  void record_run_spans(store::Store& store, const std::vector<store::ClaimedStep>& steps,
                        const std::vector<std::int64_t>& ended);
  void handle_expired(store::Store& store);
  // Starts the due debounced starts (runtime/debounce.cpp).
  void start_debounced(store::Store& store);
  // Starts a batch of a reprocess job when one may be running (runtime/reprocess.cpp).
  void continue_reprocess(store::Store& store, Millis& sleep);
  void archive_finished(store::Store& store);
  void archive_finished_batches(store::Store& store, int max_batches, int* moved) const;
  void ensure_log_days(store::Store& store);
  // Stores the drained log records; a failure is reported on stderr and loses those records
  // only, never the dispatcher's round.
  void write_logs(store::Store& store, const std::vector<store::LogRecord>& logs);
  void expire_retention(store::Store& store) const;
  // The latest workflows whose trigger matches, each with the (first) trigger that did.
  std::vector<std::pair<WorkflowPtr, const core::Trigger*>> matches(const std::string& type,
                                                                    const Json& body) const;
  // Wakes up to `n` idle workers of a pool (the rest sleep on): one per piece of new work, since
  // every woken worker costs a claim query. A worker whose claim came back full wakes the next,
  // so a burst still brings up the whole pool.
  void wake_pool(std::size_t index, int n);
  // The same for each pool whose bit is set in `pools`.
  void wake_pools(std::uint64_t pools, int n);
  // Work of any pool may be due: wakes up to `n` workers of every pool.
  void wake_workers(int n = 1);
  friend class Scheduler;  // reads and fires schedule ticks through the pool
  bool wait_for_work(std::size_t index);

  EngineSettings settings_;
  std::shared_ptr<const HandlerRegistry> handlers_;
  std::shared_ptr<WorkflowRegistry> workflows_;
  EngineHooks hooks_;
  core::ReservedEventTypes reserved_;
  StorePool pool_;
  EventCache events_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> dispatcher_stopping_{false};
  std::atomic<int> in_flight_{0};
  // Some reprocess job may be running: true at start (a job outlives the process that made
  // it), again when this process creates one; the dispatcher clears it once none runs.
  std::atomic<bool> reprocess_pending_{true};
  std::mutex flight_mu_;
  std::map<std::pair<std::int64_t, std::string>, int> flying_;  // (run, step) -> attempt
  // A set of workers and the steps they claim, with wake-up permits of its own, so that a
  // wake-up goes to a worker that may claim the work it announces.
  struct Pool {
    std::string bulkhead;  // "" for the general pool
    int workers = 0;
    int batch_size = 0;
    // A bulkhead's handlers; for the general pool, every bulkhead's (the steps it leaves).
    std::vector<std::string> handlers;
    int permits = 0;  // wake-ups not yet taken by a worker; at most one per worker
    std::condition_variable cv;
  };
  std::mutex wake_mu_;
  std::vector<std::unique_ptr<Pool>> pools_;                   // [0]: the general pool
  std::unordered_map<std::string, std::size_t> handler_pool_;  // bulkhead handlers only
  std::vector<std::size_t> worker_pool_;                       // worker -> its pool
  std::thread dispatcher_;
  Scheduler scheduler_{*this};
  std::vector<std::thread> workers_;
  bool started_ = false;
};

}  // namespace chartflow::runtime
