// Prometheus metrics of one chartflow process. Names follow chartflow_<noun>_<unit>; labels are
// low-cardinality (workflow, step, route, status, statement kind), never ids or patient data.
// Thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chartflow::core {
struct Workflow;
}

namespace chartflow::metrics {

// Backups and WAL archiving as last sampled from the database (epoch seconds; 0: never).
struct BackupStats {
  double last_backup = 0;
  bool archiving = false;
  double archived = 0, failed = 0, last_archived = 0, last_failed = 0;
};

// How many steps of one workflow's step are parked (waiting for an operator).
struct ParkedSteps {
  std::string workflow, step;
  double count = 0;
};

// A paused workflow and how many of its steps queue behind the pause.
struct PausedWorkflow {
  std::string workflow;
  double queued_steps = 0;
};

class Metrics {
 public:
  Metrics();
  // Exports a workflow's series at 0 before anything happens: runs started, runs finished per
  // status, and each step's duration histogram and retries. A series that first appears at 1 has
  // not increased for increase(), so the first run after a start would go uncounted and alerts
  // summing over these would see nothing. Call for each workflow once it is loaded.
  void declare_workflow(const core::Workflow& workflow);
  void event_received(const std::string& type);
  // Events a debounced trigger coalesced away: a later event of the same key started the run
  // in their stead.
  void events_coalesced(const std::string& workflow, double events);
  void run_started(const std::string& workflow);
  void run_finished(const std::string& workflow, const std::string& status);
  void step_finished(const std::string& workflow, const std::string& step, double seconds);
  void step_expired(bool timed_out);
  void step_retried(const std::string& workflow, const std::string& step);
  void http_request(const std::string& route, const std::string& method, int status,
                    double seconds);
  void set_queue(double ready, double oldest_ready_seconds, double waiting, double running);
  // Parked steps as last sampled from the database; a step no longer listed reads 0.
  void set_steps_parked(const std::vector<ParkedSteps>& parked);
  void set_backup_stats(const BackupStats& stats);
  // Paused workflows and runs as last sampled; a workflow no longer paused reads 0.
  void set_paused(const std::vector<PausedWorkflow>& workflows, double paused_runs);
  // External handler processes of one handler (its name, never an id): idle (warm) and busy.
  // The first report also exports the handler's cold starts at 0.
  void handler_pool(const std::string& handler, int warm, int busy);
  void handler_cold_start(const std::string& handler);
  // One store call or batch statement by kind (see store::Store::set_query_observer).
  void db_query(std::string_view kind, double seconds);
  void set_db_pool(double in_use, double idle, double max);
  // The HTTP server's upload slots: held, uploads queued for one, and how many there are.
  void set_upload_slots(double in_use, double waiting, double max);
  // Restarts of the embedded PostgreSQL by its supervisor. Adding 0 at start exports the series,
  // so that increase() sees the first restart too.
  void embedded_postgres_restarts(double added = 1);
  // Runs just before each serialize(), to sample gauges (the pool); set once at start-up.
  void on_collect(std::function<void()> sample) { on_collect_ = std::move(sample); }
  std::string serialize() const;
  // Spans the trace exporter dropped so far (its queue was full, or the collector failed), as
  // the exporter counts them: the counter follows that total.
  void set_trace_spans_dropped(double total);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Counter>& events_coalesced_;
  prometheus::Family<prometheus::Counter>& runs_started_;
  prometheus::Family<prometheus::Counter>& runs_finished_;
  prometheus::Family<prometheus::Histogram>& step_duration_;
  prometheus::Family<prometheus::Counter>& expirations_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Family<prometheus::Gauge>& steps_parked_;
  std::mutex parked_mu_;
  std::set<std::pair<std::string, std::string>> parked_seen_;  // (workflow, step) ever reported
  prometheus::Family<prometheus::Gauge>& workflow_paused_;
  prometheus::Family<prometheus::Gauge>& paused_queued_;
  prometheus::Family<prometheus::Gauge>& runs_paused_;
  std::set<std::string> paused_seen_;  // guarded by parked_mu_
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_duration_;
  prometheus::Family<prometheus::Gauge>& queue_;
  prometheus::Family<prometheus::Gauge>& oldest_ready_;
  prometheus::Family<prometheus::Gauge>& handler_processes_;
  prometheus::Family<prometheus::Counter>& cold_starts_;
  prometheus::Family<prometheus::Histogram>& db_query_;
  prometheus::Family<prometheus::Gauge>& db_pool_;
  prometheus::Family<prometheus::Gauge>& db_pool_max_;
  prometheus::Family<prometheus::Gauge>& upload_slots_;
  prometheus::Gauge& upload_slots_max_;
  prometheus::Family<prometheus::Counter>& embedded_restarts_;
  prometheus::Gauge& backup_last_;
  prometheus::Gauge& wal_archive_enabled_;
  prometheus::Gauge& wal_archived_;
  prometheus::Gauge& wal_archive_failed_;
  prometheus::Gauge& wal_last_archived_;
  prometheus::Gauge& wal_last_failed_;
  prometheus::Counter& trace_spans_dropped_;
  std::function<void()> on_collect_;
};

}  // namespace chartflow::metrics
