// Reprocessing runs (issue #17 item 3; tables in schema/engine/0016_reprocess.sql): which runs a
// selection covers, the job that starts a new run for each, batch by batch, and the flags a
// reprocessing run's handlers read. Functions over the caller's transaction (Sql), so the
// runtime decides what commits together; stateless and safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::store {

struct ReprocessSelection {
  std::string workflow;
  std::optional<std::string> from, to;     // RFC 3339: runs created in [from, to)
  std::vector<std::string> statuses;       // the runs' statuses; empty: any
  std::optional<std::string> subject;      // the run's subject (a chart id)
  std::optional<std::string> failed_step;  // a step of that name failed or is parked
  Json to_json() const;
};

struct SelectedRun {
  std::int64_t run_id = 0, event_id = 0;
  std::optional<std::string> subject;
  std::string status;
  Json event;  // the body of the event that started it
};

// The selected runs with an id above `after`, by id, with their events' bodies.
std::vector<SelectedRun> select_reprocess_runs(Sql& sql, const ReprocessSelection& selection,
                                               std::int64_t after, int limit);
// How many runs the selection covers and of how many distinct subjects: {"runs", "charts"}.
Json count_reprocess_selection(Sql& sql, const ReprocessSelection& selection);

// Creates a running job for every run the selection covers now; returns its id (total: how
// many). `flags` are the handlers' ({"resend", "force", "reason"}); `by` the audit actor.
std::int64_t create_reprocess_job(Sql& sql, const ReprocessSelection& selection, const Json& flags,
                                  int batch_size, const std::string& by, int* total);

// The next batch of a running job: the job row is locked (another process's batch of the same
// job is skipped) until the caller's transaction ends. nullopt: no running job is free.
struct ReprocessBatch {
  std::int64_t job_id = 0;
  std::string workflow;
  struct Item {
    std::int64_t source_run_id = 0, event_id = 0;
    std::optional<std::string> subject;
    Json event;
  };
  std::vector<Item> items;  // empty: nothing left (the caller finishes the job)
};
std::optional<ReprocessBatch> next_reprocess_batch(Sql& sql);

// Starts one item's new run at workflow version `version_id` with `steps` (as ingest plans
// them: [{"step_key", "handler", "needs", "pending_needs", "max_attempts", "timeout_ms",
// "concurrency_key", "concurrency_limit"}]) and links it to the item. Returns the new run id.
std::int64_t start_reprocess_run(Sql& sql, std::int64_t job_id, std::int64_t version_id,
                                 const std::string& workflow, const ReprocessBatch::Item& item,
                                 const Json& steps);
// After a batch: counts the job's started runs, and marks it done when none is left. Wakes the
// workers of every process when `started` > 0.
void finish_reprocess_batch(Sql& sql, std::int64_t job_id, int started);

// The job with its progress: {"id", "workflow", "selection", "flags", "batch_size", "status",
// "total", "started", "created_by", "created_at", "finished_at"}; nullopt: no such job.
std::optional<Json> reprocess_job(Sql& sql, std::int64_t job_id);
// Recent jobs, newest first.
Json reprocess_jobs(Sql& sql, int limit);
// Stops a running job's further batches; false when it is not running (or not found).
bool cancel_reprocess_job(Sql& sql, std::int64_t job_id);
// True when some job is running (the dispatcher's check at start and after creating one).
bool reprocess_running(Sql& sql);

}  // namespace chartflow::store
