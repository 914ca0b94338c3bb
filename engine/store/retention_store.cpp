#include "store/retention_store.hpp"

#include "engine/util/duration.hpp"
#include "engine/util/sql_rows.hpp"

namespace chartflow::store {
namespace {

using util::column_bool;
using util::column_int;
using util::column_text;

std::string seconds(std::chrono::milliseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

// "400d", "36h": settings are given in days and hours, and read back the same way.
std::string days_or_less(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms > 0 && ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms > 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  return core::format_duration(d);
}

Json text_or_null(const Json& row, std::string_view column) {
  auto v = column_text(row, column);
  return v ? Json(*v) : Json(nullptr);
}

}  // namespace

Json RetentionPolicy::to_json() const {
  return {{"runs", days_or_less(runs)},
          {"logs", days_or_less(logs)},
          {"archive_after", days_or_less(archive_after)}};
}

int archive_runs(Sql& sql, std::chrono::milliseconds after, int batch) {
  const auto row = util::query_one(
      sql, "SELECT retention_archive($1::bigint * interval '1 second', $2::int) AS n",
      {seconds(after), std::to_string(batch)});
  return row ? static_cast<int>(column_int(*row, "n").value_or(0)) : 0;
}

Json expire_partitions(Sql& sql, const RetentionPolicy& policy, bool dry_run) {
  // Taken here too (retention_expire takes it again, a no-op) so that a busy lock is told apart
  // from nothing to drop.
  if (!dry_run) {
    const auto lock =
        util::query_one(sql, "SELECT pg_try_advisory_xact_lock(retention_lock_key()) AS ok");
    if (!lock || !column_bool(*lock, "ok"))
      return {{"dry_run", false}, {"busy", true}, {"dropped", Json::array()}, {"bytes", 0}};
  }
  Json dropped = Json::array();
  std::int64_t bytes = 0;
  for (const auto& row : util::query_rows(
           sql,
           "SELECT class, part, " + util::sql_iso("until") +
               " AS until, bytes, rows_estimate, held_runs FROM retention_expire($1::bigint * "
               "interval '1 second', $2::bigint * interval '1 second', $3::boolean)",
           {seconds(policy.runs), seconds(policy.logs), dry_run ? "true" : "false"})) {
    const auto b = column_int(row, "bytes").value_or(0);
    bytes += b;
    dropped.push_back({{"class", text_or_null(row, "class")},
                       {"partition", text_or_null(row, "part")},
                       {"until", text_or_null(row, "until")},
                       {"bytes", b},
                       {"rows_estimate", column_int(row, "rows_estimate").value_or(0)},
                       {"held_runs", column_int(row, "held_runs").value_or(0)}});
  }
  return {{"dry_run", dry_run}, {"dropped", dropped}, {"bytes", bytes}};
}

int ensure_log_partitions(Sql& sql, int days_ahead) {
  const auto row = util::query_one(sql, "SELECT retention_ensure_partitions($1::int) AS n",
                                   {std::to_string(days_ahead)});
  return row ? static_cast<int>(column_int(*row, "n").value_or(0)) : 0;
}

Json retention_status(Sql& sql) {
  Json parts = Json::array();
  for (const auto& row : util::query_rows(
           sql,
           "SELECT class, parent, partition, from_bound, to_bound, held, bytes, rows_estimate "
           "FROM retention_partition_list ORDER BY class DESC, parent, held, from_bound NULLS "
           "FIRST")) {
    // Month bounds are dates; a log day's are timestamps, shown as they are.
    parts.push_back({{"class", text_or_null(row, "class")},
                     {"table", text_or_null(row, "parent")},
                     {"partition", text_or_null(row, "partition")},
                     {"from", text_or_null(row, "from_bound")},
                     {"to", text_or_null(row, "to_bound")},
                     {"held", column_bool(row, "held")},
                     {"bytes", column_int(row, "bytes").value_or(0)},
                     {"rows_estimate", column_int(row, "rows_estimate").value_or(0)}});
  }
  return {{"partitions", parts}, {"holds", list_holds(sql)}};
}

Json list_holds(Sql& sql) {
  Json out = Json::array();
  for (const auto& row :
       util::query_rows(sql, "SELECT subject, reason, held_by, " + util::sql_iso("created_at") +
                                 " AS created_at FROM retention_hold ORDER BY created_at, subject"))
    out.push_back({{"subject", text_or_null(row, "subject")},
                   {"reason", text_or_null(row, "reason")},
                   {"held_by", text_or_null(row, "held_by")},
                   {"created_at", text_or_null(row, "created_at")}});
  return out;
}

std::optional<Json> add_hold(Sql& sql, const std::string& subject, const std::string& reason,
                             const std::string& by) {
  const auto row = util::query_one(
      sql,
      "INSERT INTO retention_hold (subject, reason, held_by) VALUES ($1, $2, $3) ON CONFLICT "
      "(subject) DO NOTHING RETURNING subject, reason, held_by, " +
          util::sql_iso("created_at") + " AS created_at",
      {subject, reason, by});
  if (!row) return std::nullopt;
  return Json{{"subject", text_or_null(*row, "subject")},
              {"reason", text_or_null(*row, "reason")},
              {"held_by", text_or_null(*row, "held_by")},
              {"created_at", text_or_null(*row, "created_at")}};
}

bool release_hold(Sql& sql, const std::string& subject) {
  return util::query_one(sql, "DELETE FROM retention_hold WHERE subject = $1 RETURNING subject",
                         {subject})
      .has_value();
}

void restore_event(Sql& sql, std::int64_t event_id) {
  sql.query("SELECT retention_restore_event($1::bigint)", {std::to_string(event_id)});
}

}  // namespace chartflow::store
