#include "store/audit_store.hpp"

#include "engine/util/sql_rows.hpp"

namespace chartflow::store {
namespace {

constexpr const char* kTime = "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

}  // namespace

void insert_audit_event(Sql& sql, const AuditEntry& e) {
  sql.query(
      "INSERT INTO audit_event (actor, actor_name, role, action, resource_type, resource_id, "
      "remote, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
      {e.actor, e.actor_name, e.role, e.action, e.resource_type, e.resource_id, e.remote, e.outcome,
       e.detail.dump(-1, ' ', false, Json::error_handler_t::replace)});
}

void count_audit_refusal(Sql& sql, const std::string& action, const std::string& outcome,
                         const std::string& remote, const std::optional<std::string>& reason,
                         const std::optional<std::string>& path,
                         const std::optional<std::string>& name) {
  sql.query(
      "INSERT INTO audit_refusal AS r (action, outcome, remote, minute, reason, path, names) "
      "VALUES ($1, $2, $3, date_trunc('minute', now()), $4, $5, CASE WHEN $6::text IS NULL THEN "
      "'{}'::text[] ELSE ARRAY[$6::text] END) "
      "ON CONFLICT (action, outcome, remote, minute) DO UPDATE SET count = r.count + 1, "
      "last_at = now(), names = CASE WHEN $6::text IS NULL OR $6::text = ANY (r.names) OR "
      "cardinality(r.names) >= 10 THEN r.names ELSE r.names || $6::text END",
      {action, outcome, remote, reason, path, name});
}

int fold_audit_refusals(Sql& sql, bool include_current_minute) {
  Json rows = util::query_rows(
      sql,
      std::string("WITH done AS (DELETE FROM audit_refusal WHERE $1::boolean OR minute < "
                  "date_trunc('minute', now()) RETURNING *) "
                  "INSERT INTO audit_event (actor, actor_name, action, remote, outcome, detail) "
                  "SELECT 'anonymous', CASE WHEN cardinality(names) = 1 THEN names[1] END, "
                  "action, nullif(remote, ''), outcome, jsonb_strip_nulls(jsonb_build_object("
                  "'aggregated', true, 'count', count, "
                  "'minute', to_char(minute AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI\"Z\"'), "
                  "'first_at', to_char(first_at AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                  "'last_at', to_char(last_at AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                  "'reason', reason, 'path', path, 'names', CASE WHEN cardinality(names) > 0 "
                  "THEN to_jsonb(names) END)) "
                  "FROM done ORDER BY minute, action, outcome, remote RETURNING 1"),
      {std::string(include_current_minute ? "true" : "false")});
  return static_cast<int>(rows.size());
}

AuditHead audit_head(Sql& sql) {
  auto row = util::query_one(
      sql, "SELECT seq, hash FROM audit_event WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1");
  if (!row) return {};
  return AuditHead{util::column_int(*row, "seq").value_or(0),
                   util::column_text(*row, "hash").value_or("")};
}

int seal_audit_events(Sql& sql) {
  Json rows = util::query_rows(sql, "SELECT audit_event_seal() AS n");
  return static_cast<int>(util::column_int(rows.at(0), "n").value_or(0));
}

Json audit_events(Sql& sql, const AuditFilter& f) {
  std::optional<std::string> after;
  if (f.after) after = std::to_string(*f.after);
  Json rows = util::query_rows(
      sql,
      std::string("SELECT id, ") + kTime +
          " AS at, actor, actor_name, role, action, resource_type, resource_id, remote, "
          "outcome, detail::text AS detail, seq, hash FROM audit_event "
          "WHERE ($1::timestamptz IS NULL OR at >= $1::timestamptz) "
          "AND ($2::timestamptz IS NULL OR at < $2::timestamptz) "
          "AND ($3::text IS NULL OR actor = $3 OR actor_name = $3) "
          "AND ($4::text IS NULL OR action = $4 OR action LIKE $4 || '.%') "
          "AND ($5::bigint IS NULL OR id < $5::bigint) ORDER BY id DESC LIMIT $6",
      {f.since, f.until, f.actor, f.action, after, std::to_string(f.limit)});
  Json events = Json::array();
  for (auto& row : rows) {
    row["id"] = util::column_int(row, "id").value_or(0);
    if (auto seq = util::column_int(row, "seq")) row["seq"] = *seq;
    row["detail"] = util::column_json(row, "detail");
    events.push_back(std::move(row));
  }
  return events;
}

Json audit_chain_page(Sql& sql, std::int64_t after_seq, int limit) {
  return util::query_rows(
      sql,
      std::string("SELECT id, ") + kTime +
          " AS at, actor, coalesce(actor_name, '') AS actor_name, coalesce(role, '') AS role, "
          "action, coalesce(resource_type, '') AS resource_type, "
          "coalesce(resource_id, '') AS resource_id, coalesce(remote, '') AS remote, outcome, "
          "detail::text AS detail, seq, hash FROM audit_event WHERE seq > $1::bigint "
          "ORDER BY seq LIMIT $2",
      {std::to_string(after_seq), std::to_string(limit)});
}

}  // namespace chartflow::store
