#include "handlers/chart_retention/revision_retention.hpp"

#include <stdexcept>
#include <string>

#include "engine/util/duration.hpp"
#include "engine/util/sql_rows.hpp"

namespace chartflow::handlers::chart_retention {

RevisionRetention RevisionRetention::from_json(const Json& json) {
  RevisionRetention out;
  if (json.is_null()) return out;
  if (!json.is_object()) throw std::invalid_argument("the file must be a mapping (revisions: ...)");
  for (const auto& [key, value] : json.items())
    if (key != "revisions")
      throw std::invalid_argument("unknown key '" + key + "' (the only one is revisions)");
  if (!json.contains("revisions")) return out;
  const Json& v = json.at("revisions");
  if (!v.is_string())
    throw std::invalid_argument("revisions must be forever or a duration such as 3650d");
  const auto text = v.get<std::string>();
  if (text == "forever") return out;
  const auto d = core::parse_duration(text);
  if (!d)
    throw std::invalid_argument("revisions must be forever or a duration such as 3650d, got '" +
                                text + "'");
  // A typo must not delete medical records: no law keeps them for less than a year.
  if (*d < kShortestRevisionRetention)
    throw std::invalid_argument("revisions must be at least 365d (or forever), got '" + text + "'");
  out.keep = *d;
  return out;
}

StepOutcome RevisionExpiryHandler::run(StepContext& ctx) {
  if (!retention_.keep) return Completed{{{"revisions", "forever"}, {"expired", 0}}};
  EngineServices* services = services_ ? services_->get() : nullptr;
  if (services == nullptr) return Retry{"the engine is not serving yet", std::nullopt};
  const Json held = services->held_subjects();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(*retention_.keep).count();
  // Oldest first; a chart's newest revision is the record as it stands and always stays.
  const Json rows = util::query_rows(
      ctx.sql(),
      "WITH doomed AS (SELECT r.chart_id, r.revision FROM chart_revision r JOIN chart c ON "
      "c.chart_id = r.chart_id WHERE r.revision < c.latest_revision AND r.created_at < now() - "
      "$1::bigint * interval '1 second' AND r.chart_id <> ALL (ARRAY(SELECT "
      "jsonb_array_elements_text($2::jsonb))) ORDER BY r.created_at LIMIT $3::int FOR UPDATE OF "
      "r SKIP LOCKED), gone AS (DELETE FROM chart_revision r USING doomed d WHERE r.chart_id = "
      "d.chart_id AND r.revision = d.revision RETURNING r.chart_id, r.revision) SELECT chart_id, "
      "count(*) AS n, min(revision) AS first, max(revision) AS last FROM gone GROUP BY chart_id "
      "ORDER BY chart_id",
      {std::to_string(seconds), held.dump(), std::to_string(kBatch)});
  std::int64_t expired = 0;
  for (const auto& row : rows) {
    const auto n = util::column_int(row, "n").value_or(0);
    expired += n;
    AuditEntry audit;
    audit.actor = "retention";
    audit.action = "chart.revisions_expired";
    audit.resource_type = "chart";
    audit.resource_id = util::column_text(row, "chart_id");
    audit.detail = {{"revisions", n},
                    {"from", util::column_int(row, "first").value_or(0)},
                    {"to", util::column_int(row, "last").value_or(0)},
                    {"run_id", ctx.run_id()}};
    services->audit(ctx.sql(), audit);
  }
  ctx.log(LogLevel::kInfo, "event=chart_revisions_expired",
          {{"revisions", expired}, {"charts", rows.size()}});
  return Completed{{{"revisions", core::format_duration(*retention_.keep)},
                    {"expired", expired},
                    {"charts", rows.size()},
                    {"held_charts", held.size()},
                    {"more", expired == kBatch}}};
}

}  // namespace chartflow::handlers::chart_retention
