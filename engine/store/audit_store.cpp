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
