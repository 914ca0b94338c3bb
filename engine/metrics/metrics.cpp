#include "metrics/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <array>
#include <sstream>

#include "core/workflow.hpp"

namespace chartflow::metrics {
namespace {

// A gauge without labels, exported (at 0) from the start.
prometheus::Gauge& gauge(prometheus::Registry& registry, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

const prometheus::Histogram::BucketBoundaries kStepBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Statements take from a tenth of a millisecond (a claim) to seconds (a slow report).
const prometheus::Histogram::BucketBoundaries kQueryBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      events_(prometheus::BuildCounter()
                  .Name("chartflow_events_received_total")
                  .Help("Events accepted, by type")
                  .Register(*registry_)),
      events_coalesced_(prometheus::BuildCounter()
                            .Name("chartflow_events_coalesced_total")
                            .Help("Events of a debounced trigger that started no run of their "
                                  "own (a later event of the same key did), by workflow")
                            .Register(*registry_)),
      runs_started_(prometheus::BuildCounter()
                        .Name("chartflow_runs_started_total")
                        .Help("Workflow runs started, by workflow")
                        .Register(*registry_)),
      runs_finished_(prometheus::BuildCounter()
                         .Name("chartflow_runs_finished_total")
                         .Help("Workflow runs finished, by workflow and status")
                         .Register(*registry_)),
      step_duration_(prometheus::BuildHistogram()
                         .Name("chartflow_step_duration_seconds")
                         .Help("Handler time per step attempt, by workflow and step")
                         .Register(*registry_)),
      expirations_(prometheus::BuildCounter()
                       .Name("chartflow_step_expirations_total")
                       .Help("Steps whose lease expired or that timed out, by reason")
                       .Register(*registry_)),
      retries_(prometheus::BuildCounter()
                   .Name("chartflow_step_retries_total")
                   .Help("Failed step attempts that will be retried, by workflow and step")
                   .Register(*registry_)),
      steps_parked_(prometheus::BuildGauge()
                        .Name("chartflow_steps_parked")
                        .Help("Steps whose attempts ran out and that wait for an operator "
                              "(on_exhausted: park), by workflow and step, as last sampled")
                        .Register(*registry_)),
      workflow_paused_(prometheus::BuildGauge()
                           .Name("chartflow_workflow_paused")
                           .Help("1 while an operator has paused the workflow, else 0")
                           .Register(*registry_)),
      paused_queued_(prometheus::BuildGauge()
                         .Name("chartflow_workflow_paused_queued_steps")
                         .Help("Steps of a paused workflow waiting for it to resume")
                         .Register(*registry_)),
      runs_paused_(prometheus::BuildGauge()
                       .Name("chartflow_runs_paused")
                       .Help("Runs in flight that an operator has paused one by one")
                       .Register(*registry_)),
      http_requests_(prometheus::BuildCounter()
                         .Name("chartflow_http_requests_total")
                         .Help("HTTP requests, by route, method and status")
                         .Register(*registry_)),
      http_duration_(prometheus::BuildHistogram()
                         .Name("chartflow_http_request_duration_seconds")
                         .Help("HTTP request handling time, by route")
                         .Register(*registry_)),
      queue_(prometheus::BuildGauge()
                 .Name("chartflow_steps")
                 .Help("Steps by state (ready = due now) as last sampled")
                 .Register(*registry_)),
      oldest_ready_(prometheus::BuildGauge()
                        .Name("chartflow_oldest_ready_step_age_seconds")
                        .Help("How long the oldest due step has waited to be claimed")
                        .Register(*registry_)),
      handler_processes_(prometheus::BuildGauge()
                             .Name("chartflow_handler_processes")
                             .Help("External handler processes, by handler and state (warm, busy)")
                             .Register(*registry_)),
      cold_starts_(prometheus::BuildCounter()
                       .Name("chartflow_handler_cold_starts_total")
                       .Help("Invocations that had to start their handler process, by handler")
                       .Register(*registry_)),
      db_query_(prometheus::BuildHistogram()
                    .Name("chartflow_db_query_duration_seconds")
                    .Help("Database round trips by kind: a store call (one transaction) or a "
                          "step-batch statement")
                    .Register(*registry_)),
      db_pool_(prometheus::BuildGauge()
                   .Name("chartflow_db_pool_connections")
                   .Help("Connections of the API's database pool, by state (in_use, idle)")
                   .Register(*registry_)),
      db_pool_max_(prometheus::BuildGauge()
                       .Name("chartflow_db_pool_connections_max")
                       .Help("Size limit of the API's database pool")
                       .Register(*registry_)),
      upload_slots_(prometheus::BuildGauge()
                        .Name("chartflow_http_upload_slots")
                        .Help("Large uploads holding a slot (in_use) and waiting for one (waiting)")
                        .Register(*registry_)),
      upload_slots_max_(gauge(*registry_, "chartflow_http_upload_slots_max",
                              "Large uploads read and handled at once (--upload-slots)")),
      embedded_restarts_(prometheus::BuildCounter()
                             .Name("chartflow_embedded_postgres_restarts_total")
                             .Help("Restarts of the embedded PostgreSQL after it died")
                             .Register(*registry_)),
      backup_last_(gauge(*registry_, "chartflow_backup_last_success_timestamp_seconds",
                         "When the newest base backup by chartflow backup finished (0: none)")),
      wal_archive_enabled_(gauge(*registry_, "chartflow_wal_archive_enabled",
                                 "1 when PostgreSQL archives WAL (archive_mode is not off)")),
      wal_archived_(gauge(*registry_, "chartflow_wal_archived_segments",
                          "WAL segments archived (pg_stat_archiver, since its last reset)")),
      wal_archive_failed_(gauge(*registry_, "chartflow_wal_archive_failures",
                                "Failed attempts to archive a WAL segment (pg_stat_archiver)")),
      wal_last_archived_(gauge(*registry_, "chartflow_wal_archive_last_archived_timestamp_seconds",
                               "When a WAL segment was last archived (0: never)")),
      wal_last_failed_(gauge(*registry_, "chartflow_wal_archive_last_failed_timestamp_seconds",
                             "When archiving a WAL segment last failed (0: never)")),
      trace_spans_dropped_(prometheus::BuildCounter()
                               .Name("chartflow_trace_spans_dropped_total")
                               .Help("Spans not exported: the queue was full or the OTLP "
                                     "collector failed")
                               .Register(*registry_)
                               .Add({})) {
  // Series at 0 from the start, so that increase() counts the first expiration of each reason.
  expirations_.Add({{"reason", "lease"}});
  expirations_.Add({{"reason", "timeout"}});
}

void Metrics::set_trace_spans_dropped(double total) {
  const double added = total - trace_spans_dropped_.Value();
  if (added > 0) trace_spans_dropped_.Increment(added);
}

void Metrics::declare_workflow(const core::Workflow& workflow) {
  runs_started_.Add({{"workflow", workflow.name}});
  for (const auto& t : workflow.triggers)
    if (t.debounce) events_coalesced_.Add({{"workflow", workflow.name}});
  {
    // Exported at 0 so that an alert on a long pause has a series from the start.
    std::lock_guard lock(parked_mu_);
    if (paused_seen_.insert(workflow.name).second) {
      workflow_paused_.Add({{"workflow", workflow.name}}).Set(0);
      paused_queued_.Add({{"workflow", workflow.name}}).Set(0);
    }
  }
  // The statuses run_finished is called with (cancelling a run does not report one).
  for (const char* status : {"succeeded", "failed"})
    runs_finished_.Add({{"workflow", workflow.name}, {"status", status}});
  for (const auto& step : workflow.steps) {
    step_duration_.Add({{"workflow", workflow.name}, {"step", step.name}}, kStepBuckets);
    retries_.Add({{"workflow", workflow.name}, {"step", step.name}});
  }
}

void Metrics::event_received(const std::string& type) { events_.Add({{"type", type}}).Increment(); }

void Metrics::events_coalesced(const std::string& workflow, double events) {
  events_coalesced_.Add({{"workflow", workflow}}).Increment(events);
}

void Metrics::run_started(const std::string& workflow) {
  runs_started_.Add({{"workflow", workflow}}).Increment();
}

void Metrics::run_finished(const std::string& workflow, const std::string& status) {
  runs_finished_.Add({{"workflow", workflow}, {"status", status}}).Increment();
}

void Metrics::step_finished(const std::string& workflow, const std::string& step, double seconds) {
  step_duration_.Add({{"workflow", workflow}, {"step", step}}, kStepBuckets).Observe(seconds);
}

void Metrics::step_expired(bool timed_out) {
  expirations_.Add({{"reason", timed_out ? "timeout" : "lease"}}).Increment();
}

void Metrics::step_retried(const std::string& workflow, const std::string& step) {
  retries_.Add({{"workflow", workflow}, {"step", step}}).Increment();
}

namespace {

// Label values come from a fixed set: a client sending made-up methods must not grow the series.
const std::string& method_label(const std::string& method) {
  static const std::array<std::string, 7> kKnown = {"GET",    "HEAD",  "POST",   "PUT",
                                                    "DELETE", "PATCH", "OPTIONS"};
  static const std::string kOther = "other";
  for (const auto& m : kKnown)
    if (m == method) return m;
  return kOther;
}

}  // namespace

void Metrics::http_request(const std::string& route, const std::string& method, int status,
                           double seconds) {
  http_requests_
      .Add({{"route", route}, {"method", method_label(method)}, {"status", std::to_string(status)}})
      .Increment();
  http_duration_.Add({{"route", route}}, kStepBuckets).Observe(seconds);
}

void Metrics::set_queue(double ready, double oldest_ready_seconds, double waiting, double running) {
  queue_.Add({{"state", "ready"}}).Set(ready);
  queue_.Add({{"state", "waiting"}}).Set(waiting);
  queue_.Add({{"state", "running"}}).Set(running);
  oldest_ready_.Add({}).Set(oldest_ready_seconds);
}

void Metrics::set_steps_parked(const std::vector<ParkedSteps>& parked) {
  std::lock_guard lock(parked_mu_);
  // A step that is no longer parked reads 0 rather than vanishing, so an alert on it resolves.
  for (const auto& [workflow, step] : parked_seen_)
    steps_parked_.Add({{"workflow", workflow}, {"step", step}}).Set(0);
  for (const auto& p : parked) {
    steps_parked_.Add({{"workflow", p.workflow}, {"step", p.step}}).Set(p.count);
    parked_seen_.emplace(p.workflow, p.step);
  }
}

void Metrics::set_paused(const std::vector<PausedWorkflow>& workflows, double paused_runs) {
  std::lock_guard lock(parked_mu_);
  for (const auto& w : paused_seen_) {
    workflow_paused_.Add({{"workflow", w}}).Set(0);
    paused_queued_.Add({{"workflow", w}}).Set(0);
  }
  for (const auto& w : workflows) {
    workflow_paused_.Add({{"workflow", w.workflow}}).Set(1);
    paused_queued_.Add({{"workflow", w.workflow}}).Set(w.queued_steps);
    paused_seen_.insert(w.workflow);
  }
  runs_paused_.Add({}).Set(paused_runs);
}

void Metrics::set_backup_stats(const BackupStats& stats) {
  backup_last_.Set(stats.last_backup);
  wal_archive_enabled_.Set(stats.archiving ? 1 : 0);
  wal_archived_.Set(stats.archived);
  wal_archive_failed_.Set(stats.failed);
  wal_last_archived_.Set(stats.last_archived);
  wal_last_failed_.Set(stats.last_failed);
}

void Metrics::handler_pool(const std::string& handler, int warm, int busy) {
  handler_processes_.Add({{"handler", handler}, {"state", "warm"}}).Set(warm);
  handler_processes_.Add({{"handler", handler}, {"state", "busy"}}).Set(busy);
  cold_starts_.Add({{"handler", handler}});  // at 0 until the first cold start
}

void Metrics::handler_cold_start(const std::string& handler) {
  cold_starts_.Add({{"handler", handler}}).Increment();
}

void Metrics::db_query(std::string_view kind, double seconds) {
  db_query_.Add({{"kind", std::string(kind)}}, kQueryBuckets).Observe(seconds);
}

void Metrics::set_db_pool(double in_use, double idle, double max) {
  db_pool_.Add({{"state", "in_use"}}).Set(in_use);
  db_pool_.Add({{"state", "idle"}}).Set(idle);
  db_pool_max_.Add({}).Set(max);
}

void Metrics::set_upload_slots(double in_use, double waiting, double max) {
  upload_slots_.Add({{"state", "in_use"}}).Set(in_use);
  upload_slots_.Add({{"state", "waiting"}}).Set(waiting);
  upload_slots_max_.Set(max);
}

void Metrics::embedded_postgres_restarts(double added) {
  embedded_restarts_.Add({}).Increment(added);
}

std::string Metrics::serialize() const {
  if (on_collect_) on_collect_();
  prometheus::TextSerializer s;
  std::ostringstream out;
  s.Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace chartflow::metrics
