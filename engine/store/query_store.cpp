// The read side for the API and dashboard: runs, run detail with steps and history, logs.
// JSON is assembled in SQL so one round trip answers one request.
#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {

Json Store::list_runs(const RunFilter& f) {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    const int limit = std::clamp(f.limit, 1, 500);
    std::optional<std::string> after;
    if (f.after) after = std::to_string(*f.after);
    // Newest first; the cursor is the last id seen (ids grow with creation time).
    auto r = tx.exec_params(
        "SELECT coalesce(jsonb_agg(jsonb_build_object("
        "  'id', id, 'workflow', workflow, 'version', (SELECT version FROM workflow_version v "
        "  WHERE v.id = workflow_version_id), 'status', status, 'subject', subject, "
        "  'event_id', event_id, 'created_at', " CF_TS("created_at") ", "
        "  'finished_at', " CF_TS("finished_at") ", 'error', error, 'duration_ms', "
        "  (extract(epoch FROM finished_at - created_at) * 1000)::bigint, 'archived', archived) ORDER BY id DESC), "
        "'[]'::jsonb)::text, min(id), count(*) FROM ("
        "  SELECT * FROM workflow_run_all WHERE ($1::text IS NULL OR workflow = $1) "
        "  AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR subject = $3) "
        "  AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz) "
        "  AND ($5::timestamptz IS NULL OR created_at < $5::timestamptz) "
        "  AND ($6::bigint IS NULL OR id < $6::bigint) ORDER BY id DESC LIMIT $7) page",
        opt(f.workflow), opt(f.status), opt(f.subject), opt(f.since), opt(f.until), opt(after),
        limit);
    Json out;
    out["runs"] = Json::parse(r[0][0].c_str());
    out["next"] = nullptr;
    if (r[0][2].as<int>() == limit) out["next"] = std::to_string(r[0][1].as<std::int64_t>());
    return out;
  });
}

std::optional<Json> Store::get_run(std::int64_t run_id) {
  return translate(*impl_, [&]() -> std::optional<Json> {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec_params(
        "SELECT jsonb_build_object("
        " 'id', w.id, 'workflow', w.workflow, 'version', v.version, 'version_id', v.id,"
        " 'status', w.status, 'subject', w.subject, 'event_id', w.event_id,"
        " 'event_type', e.type, 'trace_id', e.trace_id,"
        " 'created_at', " CF_TS("w.created_at") ","
        " 'finished_at', " CF_TS("w.finished_at") ", 'error', w.error,"
        " 'definition', v.definition, 'archived', w.archived,"
        " 'parent_run_id', w.parent_run_id, 'parent_step', w.parent_step,"
        " 'children', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id,"
        "    'workflow', c.workflow, 'status', c.status, 'step', c.parent_step,"
        "    'attempt', c.parent_attempt) ORDER BY c.id), '[]') FROM workflow_run_all c"
        "    WHERE c.parent_run_id = w.id),"
        " 'paused', (SELECT jsonb_build_object('paused_at', " CF_TS("p.paused_at") ","
        "    'paused_by', p.paused_by, 'reason', p.reason) FROM run_pause p WHERE p.run_id = w.id),"
        " 'workflow_paused', (SELECT jsonb_build_object('paused_at', " CF_TS("p.paused_at") ","
        "    'paused_by', p.paused_by, 'reason', p.reason) FROM workflow_pause p"
        "    WHERE p.workflow = w.workflow),"
        " 'steps', (SELECT coalesce(jsonb_agg(jsonb_build_object("
        "    'name', s.step_key, 'handler', s.handler, 'status', s.status, 'attempts', s.attempt + (s.status = 'waiting')::int,"
        "    'max_attempts', s.max_attempts, 'needs', s.needs,"
        "    'started_at', " CF_TS("s.started_at") ", 'finished_at', " CF_TS("s.finished_at") ","
        "    'run_at', " CF_TS("s.run_at") ", 'wait_signal', s.wait_signal,"
        "    'wait_until', " CF_TS("s.wait_until") ", 'output', s.output, 'error', s.error,"
        "    'parked_at', " CF_TS("s.parked_at") ", 'skip_reason', s.skip_reason)"
        "    ORDER BY s.started_at NULLS LAST, s.step_key), '[]') FROM step_run_all s"
        "    WHERE s.run_id = w.id),"
        " 'history', (SELECT coalesce(jsonb_agg(jsonb_build_object('at', " CF_TS("h.at") ","
        "    'type', h.type, 'step', h.step, 'attempt', h.attempt, 'worker', h.worker,"
        "    'detail', h.detail) ORDER BY h.id), '[]') FROM run_history_all h WHERE h.run_id = w.id)"
        ")::text FROM workflow_run_all w JOIN workflow_version v ON v.id = w.workflow_version_id "
        "JOIN event_all e ON e.id = w.event_id WHERE w.id = $1",
        run_id);
    if (r.empty()) return std::nullopt;
    return Json::parse(r[0][0].c_str());
  });
}

Json Store::queue_stats() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec(
        "SELECT jsonb_build_object("
        " 'ready', (SELECT count(*) FROM step_run WHERE status IN ('ready', 'retrying') AND "
        "   run_at <= now()),"
        " 'oldest_ready_seconds', coalesce((SELECT extract(epoch FROM now() - min(run_at)) FROM "
        "   step_run WHERE status IN ('ready', 'retrying') AND run_at <= now()), 0),"
        " 'running', (SELECT count(*) FROM step_run WHERE status = 'running' AND "
        "   lease_expires_at IS NOT NULL),"
        " 'waiting', (SELECT count(*) FROM step_run WHERE status = 'waiting'))::text");
    return Json::parse(r[0][0].c_str());
  });
}

Json Store::query_logs(const LogFilter& f) {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    const int limit = std::clamp(f.limit, 1, 1000);
    std::optional<std::string> run, after;
    if (f.run_id) run = std::to_string(*f.run_id);
    if (f.after) after = std::to_string(*f.after);
    std::optional<std::string> like;
    if (f.text) {
      std::string escaped;
      for (char c : *f.text) {
        if (c == '%' || c == '_' || c == '\\') escaped += '\\';
        escaped += c;
      }
      like = "%" + escaped + "%";
    }
    auto r = tx.exec_params(
        "SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'at', " CF_TS("at") ","
        " 'level', CASE level WHEN 0 THEN 'debug' WHEN 1 THEN 'info' WHEN 2 THEN 'warning' "
        " ELSE 'error' END, 'workflow', workflow, 'run', run_id, 'step', step, "
        " 'attempt', attempt, 'message', CASE WHEN redact THEN '(redacted: handler output of a "
        " run whose content is not shown to you)' ELSE message END, 'fields', CASE WHEN redact "
        " THEN jsonb_build_object('stream', 'stderr', 'redacted', true) ELSE fields END) "
        " ORDER BY at DESC, id DESC), '[]')::text, min(id), count(*) FROM (SELECT l.*, "
        " ($10::text IS NOT NULL AND l.fields->>'stream' = 'stderr' AND EXISTS (SELECT 1 FROM "
        " workflow_run_all r JOIN event_all e ON e.id = r.event_id WHERE r.id = l.run_id AND "
        " left(e.type, length($10)) = $10)) AS redact FROM log_record l WHERE level >= $1 "
        " AND ($2::timestamptz IS NULL OR at >= $2::timestamptz) "
        " AND ($3::timestamptz IS NULL OR at < $3::timestamptz) "
        " AND ($4::text IS NULL OR workflow = $4) AND ($5::bigint IS NULL OR run_id = $5::bigint) "
        " AND ($6::text IS NULL OR step = $6) AND ($7::text IS NULL OR message ILIKE $7) "
        " AND ($8::bigint IS NULL OR id < $8::bigint) ORDER BY at DESC, id DESC LIMIT $9) page",
        f.min_level, opt(f.since), opt(f.until), opt(f.workflow), opt(run), opt(f.step), opt(like),
        opt(after), limit, opt(f.redact_stderr_of_events));
    Json out;
    out["logs"] = Json::parse(r[0][0].c_str());
    out["next"] = nullptr;
    if (r[0][2].as<int>() == limit) out["next"] = std::to_string(r[0][1].as<std::int64_t>());
    return out;
  });
}

}  // namespace chartflow::store
