#include "handlers/missing_field_scan/missing_field_scan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <utility>

#include "engine/util/sql_rows.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/common/chart_cache.hpp"
#include "handlers/common/chart_event.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"
#include "handlers/missing_field_scan/writeback.hpp"

namespace chartflow::handlers::missing_field_scan {
namespace {

// Serialises scans of one chart (the update row-locks it), marks this revision scanned, and
// returns the newest revision scanned so far: one above this one means a newer upload was
// scanned already. Marking first is safe: the mark commits with the scan or not at all.
constexpr const char* kLockAndMarkScanned =
    "UPDATE chart SET last_scanned_revision = GREATEST(last_scanned_revision, $2) "
    "WHERE chart_id = $1 RETURNING last_scanned_revision";

// One statement for all findings, which also lists the questions that were open before it
// (the insert's own rows are not among them: a statement sees the table as it was before it,
// and every question it opens is one of the findings, so none of them is to be closed). The
// partial unique index chart_question_open_idx turns a finding that already has an open question
// into a no-op.
constexpr const char* kOpenQuestions =
    "WITH ins AS (INSERT INTO chart_question "
    "(chart_id, rule_id, resource_ref, question, severity, opened_revision) "
    "SELECT $1, f.rule_id, f.resource_ref, f.question, f.severity, $2 "
    "FROM jsonb_to_recordset($3::jsonb) "
    "AS f(rule_id text, resource_ref text, question text, severity text) "
    "ON CONFLICT (chart_id, rule_id, resource_ref) WHERE status = 'open' DO NOTHING "
    "RETURNING id) "
    "SELECT (SELECT count(*) FROM ins) AS opened, "
    "(SELECT coalesce(json_agg(id ORDER BY id), '[]') FROM ins)::text AS opened_ids, "
    "(SELECT coalesce(json_agg(json_build_object('id', q.id, 'rule_id', q.rule_id, "
    "'resource_ref', q.resource_ref) ORDER BY q.id), '[]') "
    "FROM chart_question q WHERE q.chart_id = $1 AND q.status = 'open')::text AS open_before";

constexpr const char* kStaleOpenCount =
    "SELECT count(*) AS n FROM chart_question WHERE chart_id = $1 AND status = 'open'";

// Closes the questions $3 names and returns every question the write-back carries: the open
// ones (including those the previous statement opened) and those closed at this revision.
std::string close_and_list_sql() {
  return fmt::format(
      "WITH closed AS (UPDATE chart_question SET status = 'closed', closed_revision = $2, "
      "closed_at = now() WHERE chart_id = $1 AND status = 'open' AND id = ANY($3::bigint[]) "
      "RETURNING id, rule_id, resource_ref, question, severity, status, created_at, closed_at) "
      "SELECT id, rule_id, resource_ref, question, severity, status, {} AS created_at, "
      "{} AS closed_at FROM (SELECT * FROM closed UNION ALL "
      "SELECT id, rule_id, resource_ref, question, severity, status, created_at, closed_at "
      "FROM chart_question WHERE chart_id = $1 AND (status = 'open' OR closed_revision = $2) "
      "AND id <> ALL($3::bigint[])) q ORDER BY id",
      util::sql_iso("created_at"), util::sql_iso("closed_at"));
}

std::string bigint_array(const std::vector<std::int64_t>& ids) {
  std::string out = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "}";
}

std::string rules_setting_of(const Json& settings) {
  const Json* value = nullptr;
  if (settings.is_object()) {
    auto it = settings.find("rules");
    if (it != settings.end() && !it->is_null()) value = &*it;
  }
  return string_setting(value, "rules", kDefaultRulesFile);
}

}  // namespace

MissingFieldScanHandler::MissingFieldScanHandler(std::filesystem::path workflows_dir)
    : workflows_dir_(std::move(workflows_dir)) {}

std::shared_ptr<const RuleSet> MissingFieldScanHandler::rules(
    const std::string& rules_setting) const {
  std::lock_guard lock(mutex_);
  auto it = rules_.find(rules_setting);
  if (it != rules_.end()) return it->second;
  std::filesystem::path path(rules_setting);
  if (path.is_relative()) path = workflows_dir_ / path;
  auto loaded = std::make_shared<const RuleSet>(RuleSet::load(path));
  rules_.emplace(rules_setting, loaded);
  return loaded;
}

void MissingFieldScanHandler::validate(const Json& config) const {
  rules(rules_setting_of(config));
}

StepOutcome MissingFieldScanHandler::run(StepContext& ctx) {
  auto event = parse_chart_event(ctx.event());
  if (!event) return Fail{"event body lacks a valid chart_id and revision", true};
  std::shared_ptr<const RuleSet> rule_set;
  try {
    rule_set = rules(string_setting(step_setting(ctx, "rules"), "rules", kDefaultRulesFile));
  } catch (const std::invalid_argument& e) {
    return Fail{e.what(), true};
  }
  Sql& sql = ctx.sql();
  const std::string revision_text = std::to_string(event->revision);
  auto chart =
      ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash);
  if (!chart) {
    return Fail{fmt::format("chart {} revision {} not found", event->chart_id, event->revision),
                true};
  }
  const fhir::BundleIndex& index = chart->index;

  // Findings, each (rule, resource) once.
  std::vector<Finding> findings;
  std::set<std::pair<std::string, std::string>> found;
  for (auto& f : scan_chart(index, *rule_set)) {
    if (found.emplace(f.rule_id, f.resource_ref).second) findings.push_back(std::move(f));
  }

  auto lock = util::query_one(sql, kLockAndMarkScanned, {event->chart_id, revision_text});
  if (!lock) return Fail{fmt::format("chart {} has no chart row", event->chart_id), true};
  const auto last_scanned = util::column_int(*lock, "last_scanned_revision").value_or(0);
  if (event->revision < last_scanned) {
    // A newer upload was scanned already; its view of the chart wins.
    auto open = util::query_one(sql, kStaleOpenCount, {event->chart_id});
    ctx.log(LogLevel::kInfo, "event=chart_scan_stale",
            {{"chart_id", event->chart_id},
             {"revision", event->revision},
             {"last_scanned_revision", last_scanned}});
    return Completed{Json{{"findings", findings.size()},
                          {"open_questions", open ? util::column_int(*open, "n").value_or(0) : 0},
                          {"opened", 0},
                          {"closed", 0},
                          {"writeback_revision", nullptr},
                          {"stale", true}}};
  }

  Json records = Json::array();
  for (const auto& f : findings) {
    records.push_back(Json{{"rule_id", f.rule_id},
                           {"resource_ref", f.resource_ref},
                           {"question", f.question},
                           {"severity", f.severity}});
  }
  auto inserted =
      util::query_one(sql, kOpenQuestions, {event->chart_id, revision_text, records.dump()});
  const auto opened = inserted ? util::column_int(*inserted, "opened").value_or(0) : 0;
  const Json open_before =
      Json::parse(inserted ? util::column_text(*inserted, "open_before").value_or("[]") : "[]");
  // Subscribers of question-opened learn of each question exactly when it exists (same commit).
  for (const auto& id :
       Json::parse(inserted ? util::column_text(*inserted, "opened_ids").value_or("[]") : "[]"))
    fhir_subscriptions::publish_question(sql, "question-opened", id.get<std::int64_t>());

  std::vector<std::int64_t> to_close;
  for (const auto& row : open_before) {
    const std::string rule_id = row.value("rule_id", "");
    const std::string ref = row.value("resource_ref", "");
    if (found.count({rule_id, ref}) != 0) continue;
    if (!decides_question(index, *rule_set, rule_id, ref)) continue;
    to_close.push_back(row.value("id", std::int64_t{0}));
  }

  static const std::string kCloseAndList = close_and_list_sql();
  std::vector<QuestionRow> questions;
  std::size_t open_count = 0;
  std::size_t closed_count = 0;
  for (const auto& row : util::query_rows(
           sql, kCloseAndList, {event->chart_id, revision_text, bigint_array(to_close)})) {
    QuestionRow q;
    q.id = util::column_int(row, "id").value_or(0);
    q.rule_id = util::column_text(row, "rule_id").value_or("");
    q.resource_ref = util::column_text(row, "resource_ref").value_or("");
    q.question = util::column_text(row, "question").value_or("");
    q.severity = util::column_text(row, "severity").value_or("warning");
    q.status = util::column_text(row, "status").value_or("open");
    q.created_at = util::column_text(row, "created_at").value_or("");
    q.closed_at = util::column_text(row, "closed_at").value_or("");
    (q.status == "open" ? open_count : closed_count) += 1;
    if (q.status == "closed" && std::find(to_close.begin(), to_close.end(), q.id) != to_close.end())
      fhir_subscriptions::publish_question(sql, "question-closed", q.id);
    questions.push_back(std::move(q));
  }

  Json writeback_revision = nullptr;
  if (!questions.empty()) {
    auto stored = store_writeback_revision(
        sql, event->chart_id, event->revision,
        writeback_text(index, event->chart_id, questions, chart->source), "missing_field_scan");
    writeback_revision = stored.revision;
  }
  ctx.log(LogLevel::kInfo, "event=chart_scanned",
          {{"chart_id", event->chart_id},
           {"revision", event->revision},
           {"findings", findings.size()},
           {"opened", opened},
           {"closed", closed_count},
           {"writeback_revision", writeback_revision}});
  return Completed{Json{{"findings", findings.size()},
                        {"open_questions", open_count},
                        {"opened", opened},
                        {"closed", closed_count},
                        {"writeback_revision", writeback_revision}}};
}

}  // namespace chartflow::handlers::missing_field_scan
