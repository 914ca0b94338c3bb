// Reprocessing runs: the selection's SQL, the job and its batches
// (schema/engine/0016_reprocess.sql).
#include "store/reprocess_store.hpp"

#include "engine/util/sql_rows.hpp"
#include "store/retention_store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {
namespace {

using util::column_int;
using util::column_text;
using util::SqlParams;

// The selection over workflow_run_all r (archived runs too: a reprocess has no window), parameters
// $1..$6. A filter left out is NULL and holds for every run. The workflow's runs by id
// (workflow_run_workflow_status_idx) or by time.
constexpr const char* kSelected =
    "r.workflow = $1 AND ($2::timestamptz IS NULL OR r.created_at >= $2::timestamptz) "
    "AND ($3::timestamptz IS NULL OR r.created_at < $3::timestamptz) "
    "AND ($4::text[] IS NULL OR r.status = ANY ($4::text[])) "
    "AND ($5::text IS NULL OR r.subject = $5) "
    "AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM step_run_all s WHERE s.run_id = r.id AND "
    "s.step_key = $6 AND s.status IN ('failed', 'parked')))";

SqlParams selection_params(const ReprocessSelection& s) {
  std::optional<std::string> statuses;
  if (!s.statuses.empty()) {
    std::string list = "{";
    for (const auto& st : s.statuses) list += (list.size() > 1 ? "," : "") + st;
    statuses = list + "}";
  }
  return {s.workflow, s.from, s.to, statuses, s.subject, s.failed_step};
}

std::int64_t int_of(const Json& row, const char* column) {
  return column_int(row, column).value_or(0);
}

}  // namespace

Json ReprocessSelection::to_json() const {
  Json j = {{"workflow", workflow}};
  if (from) j["from"] = *from;
  if (to) j["to"] = *to;
  if (!statuses.empty()) j["status"] = statuses;
  if (subject) j["chart_id"] = *subject;
  if (failed_step) j["failed_step"] = *failed_step;
  return j;
}

std::vector<SelectedRun> select_reprocess_runs(Sql& sql, const ReprocessSelection& selection,
                                               std::int64_t after, int limit) {
  auto params = selection_params(selection);
  params.push_back(std::to_string(after));
  params.push_back(std::to_string(limit));
  std::vector<SelectedRun> out;
  for (const auto& row : util::query_rows(
           sql,
           std::string("SELECT r.id, r.event_id, r.subject, r.status, e.body::text AS body FROM "
                       "workflow_run_all r JOIN event_all e ON e.id = r.event_id WHERE ") +
               kSelected + " AND r.id > $7 ORDER BY r.id LIMIT $8",
           params))
    out.push_back({int_of(row, "id"), int_of(row, "event_id"), column_text(row, "subject"),
                   column_text(row, "status").value_or(""),
                   Json::parse(column_text(row, "body").value_or("{}"))});
  return out;
}

Json count_reprocess_selection(Sql& sql, const ReprocessSelection& selection) {
  const auto row = util::query_one(sql,
                                   std::string("SELECT count(*) AS runs, count(DISTINCT r.subject) "
                                               "AS charts FROM workflow_run_all r WHERE ") +
                                       kSelected,
                                   selection_params(selection));
  return {{"runs", row ? int_of(*row, "runs") : 0}, {"charts", row ? int_of(*row, "charts") : 0}};
}

std::int64_t create_reprocess_job(Sql& sql, const ReprocessSelection& selection, const Json& flags,
                                  int batch_size, const std::string& by, int* total) {
  const auto job = util::query_one(
      sql,
      "INSERT INTO reprocess_job (workflow, selection, flags, batch_size, created_by) VALUES "
      "($1, $2::jsonb, $3::jsonb, $4::int, $5) RETURNING id",
      {selection.workflow, selection.to_json().dump(), flags.dump(), std::to_string(batch_size),
       by});
  const std::int64_t id = job ? int_of(*job, "id") : 0;
  auto params = selection_params(selection);
  params.push_back(std::to_string(id));
  const auto n = util::query_one(
      sql,
      std::string(
          "WITH i AS (INSERT INTO reprocess_item (job_id, source_run_id) SELECT $7::bigint, "
          "r.id FROM workflow_run_all r WHERE ") +
          kSelected +
          " RETURNING 1) UPDATE reprocess_job SET total = (SELECT count(*) FROM i) WHERE id = "
          "$7::bigint RETURNING total",
      params);
  if (total) *total = n ? static_cast<int>(int_of(*n, "total")) : 0;
  return id;
}

std::optional<ReprocessBatch> next_reprocess_batch(Sql& sql) {
  const auto job = util::query_one(
      sql,
      "SELECT id, workflow, batch_size FROM reprocess_job WHERE status = 'running' ORDER BY id "
      "LIMIT 1 FOR UPDATE SKIP LOCKED");
  if (!job) return std::nullopt;
  ReprocessBatch batch;
  batch.job_id = int_of(*job, "id");
  batch.workflow = column_text(*job, "workflow").value_or("");
  for (const auto& row : util::query_rows(
           sql,
           "SELECT i.source_run_id, r.event_id, r.subject, e.body::text AS body FROM "
           "reprocess_item i JOIN workflow_run_all r ON r.id = i.source_run_id JOIN event_all e ON "
           "e.id = "
           "r.event_id WHERE i.job_id = $1 AND i.new_run_id IS NULL ORDER BY i.source_run_id "
           "LIMIT $2",
           {std::to_string(batch.job_id), column_text(*job, "batch_size")})) {
    ReprocessBatch::Item item;
    item.source_run_id = int_of(row, "source_run_id");
    item.event_id = int_of(row, "event_id");
    item.subject = column_text(row, "subject");
    item.event = Json::parse(column_text(row, "body").value_or("{}"));
    batch.items.push_back(std::move(item));
  }
  return batch;
}

std::int64_t start_reprocess_run(Sql& sql, std::int64_t job_id, std::int64_t version_id,
                                 const std::string& workflow, const ReprocessBatch::Item& item,
                                 const Json& steps) {
  static const std::string kStart =
      // The run carries its handlers' flags (StepContext::rerun), which its steps' claims hand
      // over (schema/engine/0017_claim_rerun_flags.sql).
      "WITH run AS (INSERT INTO workflow_run (workflow_version_id, workflow, event_id, status, "
      "remaining_steps, subject, started_at, rerun) SELECT $1::bigint, $2, $3::bigint, "
      "'running', $4::int, $5, now(), j.flags || jsonb_build_object('job', j.id, "
      "'reprocess_of', $7::bigint) FROM reprocess_job j WHERE j.id = $8::bigint "
      "RETURNING id, event_id)," +
      insert_steps_cte("run", "run.id", "$6::jsonb") +
      " h AS (INSERT INTO run_history (run_id, type, detail) SELECT run.id, 'scheduled', "
      "jsonb_build_object('event_id', run.event_id, 'version_id', $1::bigint, 'reprocess_of', "
      "$7::bigint, 'reprocess_job', $8::bigint) FROM run),"
      " i AS (UPDATE reprocess_item SET new_run_id = run.id FROM run WHERE job_id = $8::bigint "
      "AND source_run_id = $7::bigint) SELECT id FROM run";
  // The source run may be archived (reprocess has no window); its event comes back first.
  restore_event(sql, item.event_id);
  const auto row =
      util::query_one(sql, kStart,
                      {std::to_string(version_id), workflow, std::to_string(item.event_id),
                       std::to_string(steps.size()), item.subject, steps.dump(),
                       std::to_string(item.source_run_id), std::to_string(job_id)});
  return row ? int_of(*row, "id") : 0;
}

void finish_reprocess_batch(Sql& sql, std::int64_t job_id, int started) {
  sql.query(
      "UPDATE reprocess_job j SET started = started + $2::int, updated_at = now(), "
      "status = CASE WHEN EXISTS (SELECT 1 FROM reprocess_item i WHERE i.job_id = j.id AND "
      "i.new_run_id IS NULL) THEN status ELSE 'done' END, finished_at = CASE WHEN EXISTS (SELECT "
      "1 FROM reprocess_item i WHERE i.job_id = j.id AND i.new_run_id IS NULL) THEN NULL ELSE "
      "now() END WHERE id = $1 AND status = 'running'",
      {std::to_string(job_id), std::to_string(started)});
  if (started > 0) sql.query(kNotifyWake);
}

std::optional<Json> reprocess_job(Sql& sql, std::int64_t job_id) {
  const auto row = util::query_one(
      sql,
      "SELECT json_build_object('id', id, 'workflow', workflow, 'selection', selection, 'flags', "
      "flags, 'batch_size', batch_size, 'status', status, 'total', "
      "total, 'started', started, 'created_by', created_by, 'created_at', " CF_TS("created_at") ", "
      "'finished_at', " CF_TS("finished_at") ")::text AS job FROM reprocess_job WHERE id = $1",
      {std::to_string(job_id)});
  if (!row) return std::nullopt;
  return Json::parse(column_text(*row, "job").value_or("null"));
}

Json reprocess_jobs(Sql& sql, int limit) {
  Json out = Json::array();
  for (const auto& row : util::query_rows(
           sql,
           "SELECT json_build_object('id', id, 'workflow', workflow, 'status', status, 'total', "
           "total, 'started', started, 'created_by', created_by, 'created_at', " CF_TS(
               "created_at") ")::text AS job FROM reprocess_job ORDER BY id DESC LIMIT $1",
           {std::to_string(limit)}))
    out.push_back(Json::parse(column_text(row, "job").value_or("null")));
  return out;
}

bool cancel_reprocess_job(Sql& sql, std::int64_t job_id) {
  // Waits for a batch being started (it holds the job row): after the cancel, none starts.
  return !util::query_rows(sql,
                           "UPDATE reprocess_job SET status = 'cancelled', updated_at = now(), "
                           "finished_at = now() WHERE id = $1 AND status = 'running' RETURNING id",
                           {std::to_string(job_id)})
              .empty();
}

bool reprocess_running(Sql& sql) {
  return !util::query_rows(sql, "SELECT 1 FROM reprocess_job WHERE status = 'running' LIMIT 1")
              .empty();
}

}  // namespace chartflow::store
