#include "handlers/chart_api/chart_api.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/util/sql_rows.hpp"
#include "handlers/fhir/fhir_json.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"

namespace chartflow::handlers {
namespace {

// Runs `inner` and returns its rows as a JSON array built by PostgreSQL (json_agg keeps column
// types: integers and numerics arrive as numbers, jsonb columns as JSON).
Json json_rows(Sql& sql, const std::string& inner, const std::string& order_by,
               const util::SqlParams& params) {
  const std::string statement =
      fmt::format("SELECT coalesce(json_agg(t ORDER BY {}), '[]'::json)::text AS j FROM ({}) t",
                  order_by, inner);
  auto row = util::query_one(sql, statement, params);
  Json out = row ? util::column_json(*row, "j") : Json::array();
  return out.is_array() ? out : Json::array();
}

std::optional<Json> json_row(Sql& sql, const std::string& inner, const util::SqlParams& params) {
  const std::string statement = fmt::format("SELECT row_to_json(t)::text AS j FROM ({}) t", inner);
  auto row = util::query_one(sql, statement, params);
  if (!row) return std::nullopt;
  Json out = util::column_json(*row, "j");
  if (!out.is_object()) return std::nullopt;
  return out;
}

// assignee_name: the name the chart gives the practitioner the review is assigned to (the task's
// owner, taken from the Practitioner or the reference to it); null when the review went to a
// queue, whether from the start (no practitioner_ref) or by escalation.
const std::string& review_columns() {
  static const std::string kColumns = fmt::format(
      "id, chart_id, revision, run_id, step, assignee, original_assignee, practitioner_ref, "
      "CASE WHEN practitioner_ref IS NOT NULL AND assignee = original_assignee "
      "THEN nullif(task->'owner'->>'display', '') END AS assignee_name, "
      "status, {} AS due_at, escalations, {} AS escalated_at, decision, {} AS created_at, "
      "summary",
      util::sql_iso("due_at"), util::sql_iso("escalated_at"), util::sql_iso("created_at"));
  return kColumns;
}

// {name, birth_date} of the chart's Patient in its latest revision, or null. PostgreSQL picks the
// Patient out of the Bundle, so only its names and birth date cross the wire.
Json chart_patient(Sql& sql, const std::string& chart_id) {
  static const std::string kPatient =
      "SELECT (e->'resource'->'name')::text AS name, e->'resource'->>'birthDate' AS birth_date "
      "FROM chart c JOIN chart_revision r ON r.chart_id = c.chart_id "
      "AND r.revision = c.latest_revision, "
      "json_array_elements(CASE WHEN json_typeof(r.body->'entry') = 'array' "
      "THEN r.body->'entry' ELSE '[]'::json END) e "
      "WHERE c.chart_id = $1 AND e->'resource'->>'resourceType' = 'Patient' LIMIT 1";
  auto row = util::query_one(sql, kPatient, {chart_id});
  if (!row) return nullptr;
  Json person = Json::object();
  person["name"] = util::column_json(*row, "name");
  const std::string name = fhir::person_name(person);
  auto birth_date = util::column_text(*row, "birth_date");
  return Json{{"name", name.empty() ? Json(nullptr) : Json(name)},
              {"birth_date", birth_date ? Json(*birth_date) : Json(nullptr)}};
}

}  // namespace

std::optional<Json> get_chart(Sql& sql, const std::string& chart_id) {
  static const std::string kChart = fmt::format(
      "SELECT chart_id, patient_ref, latest_revision, {} AS created_at, {} AS updated_at "
      "FROM chart WHERE chart_id = $1",
      util::sql_iso("created_at"), util::sql_iso("updated_at"));
  static const std::string kRevisions = fmt::format(
      "SELECT revision, content_hash, source, uploaded_by, based_on_revision, {} AS created_at "
      "FROM chart_revision WHERE chart_id = $1",
      util::sql_iso("created_at"));
  static const std::string kOpenQuestions = fmt::format(
      "SELECT id, rule_id, resource_ref, question, severity, opened_revision, {} AS created_at "
      "FROM chart_question WHERE chart_id = $1 AND status = 'open'",
      util::sql_iso("created_at"));
  static const std::string kLatestReview = fmt::format(
      "SELECT {}, comment, {} AS decided_at FROM review WHERE chart_id = $1 "
      "ORDER BY created_at DESC, id DESC LIMIT 1",
      review_columns(), util::sql_iso("decided_at"));
  static const std::string kBill = fmt::format(
      "SELECT i.id AS invoice_id, i.status, i.total, i.currency, {} AS created_at, "
      "coalesce((SELECT json_agg(d.channel ORDER BY d.id) FROM bill_delivery d "
      "WHERE d.chart_id = i.chart_id AND d.status = 'delivered'), '[]'::json) AS deliveries "
      "FROM invoice i WHERE i.chart_id = $1",
      util::sql_iso("i.created_at"));
  // The ledger's currency when all its entries share one (null when empty or mixed).
  static const std::string kLedger =
      "SELECT count(*) AS ledger_entries, coalesce(sum(amount), 0) AS ledger_total, "
      "CASE WHEN count(DISTINCT currency) = 1 THEN min(currency) END AS ledger_currency "
      "FROM ledger_entry WHERE chart_id = $1";

  auto chart = json_row(sql, kChart, {chart_id});
  if (!chart) return std::nullopt;
  Json& out = *chart;
  out["revisions"] = json_rows(sql, kRevisions, "t.revision", {chart_id});
  out["open_questions"] = json_rows(sql, kOpenQuestions, "t.id", {chart_id});
  auto review = json_row(sql, kLatestReview, {chart_id});
  out["review"] = review ? *review : Json(nullptr);
  auto bill = json_row(sql, kBill, {chart_id});
  out["bill"] = bill ? *bill : Json(nullptr);
  auto ledger = json_row(sql, kLedger, {chart_id});
  out["ledger_total"] = ledger ? ledger->value("ledger_total", Json(0)) : Json(0);
  out["ledger_entries"] = ledger ? ledger->value("ledger_entries", Json(0)) : Json(0);
  out["ledger_currency"] = ledger ? ledger->value("ledger_currency", Json(nullptr)) : Json(nullptr);
  out["patient"] = chart_patient(sql, chart_id);
  return chart;
}

std::optional<std::string> get_revision(Sql& sql, const std::string& chart_id, int revision) {
  auto row = util::query_one(
      sql, "SELECT body::text AS body FROM chart_revision WHERE chart_id = $1 AND revision = $2",
      {chart_id, std::to_string(revision)});
  if (!row) return std::nullopt;
  return util::column_text(*row, "body");
}

Json list_reviews(Sql& sql, const std::optional<std::string>& status,
                  const std::optional<std::string>& assignee, int limit) {
  static const std::string kList = fmt::format(
      "SELECT {} FROM review WHERE ($1::text IS NULL OR status = $1) "
      "AND ($2::text IS NULL OR assignee = $2) "
      "ORDER BY created_at DESC, id DESC LIMIT $3",
      review_columns());
  limit = std::clamp(limit, 1, kMaxReviewListLimit);
  return Json{{"reviews", json_rows(sql, kList, "t.created_at DESC, t.id DESC",
                                    {status, assignee, std::to_string(limit)})}};
}

bool chart_assigned_to(Sql& sql, const std::string& chart_id, const std::string& assignee) {
  return util::query_one(sql, "SELECT 1 FROM review WHERE chart_id = $1 AND assignee = $2 LIMIT 1",
                         {chart_id, assignee})
      .has_value();
}

std::optional<Json> get_review(Sql& sql, std::int64_t review_id) {
  static const std::string kGet = fmt::format(
      "SELECT {}, comment, decided_by, {} AS decided_at, task FROM review WHERE id = $1",
      review_columns(), util::sql_iso("decided_at"));
  return json_row(sql, kGet, {std::to_string(review_id)});
}

DecisionResult decide_review(Sql& sql, std::int64_t review_id, const std::string& decision,
                             const std::optional<std::string>& comment,
                             const std::string& decided_by) {
  DecisionResult result;
  if (decision != "approve" && decision != "reject") {
    result.status = DecisionResult::Status::kBadRequest;
    result.message = R"(decision must be "approve" or "reject")";
    return result;
  }
  if (comment && comment->size() > 10000) {
    result.status = DecisionResult::Status::kBadRequest;
    result.message = "comment is longer than 10000 bytes";
    return result;
  }
  // Only a pending review can be decided; the WHERE clause makes two racing decisions resolve
  // to one winner and one conflict.
  auto row = util::query_one(
      sql,
      "UPDATE review SET status = CASE $2 WHEN 'approve' THEN 'approved' ELSE 'rejected' END, "
      "decision = $2, comment = $3, decided_by = $4, decided_at = now(), updated_at = now() "
      "WHERE id = $1 AND status = 'pending' RETURNING run_id, step, chart_id",
      {std::to_string(review_id), decision, comment, decided_by});
  if (!row) {
    auto existing = util::query_one(sql, "SELECT status FROM review WHERE id = $1",
                                    {std::to_string(review_id)});
    if (!existing) {
      result.status = DecisionResult::Status::kNotFound;
      result.message = fmt::format("review {} not found", review_id);
    } else {
      result.status = DecisionResult::Status::kConflict;
      result.message = fmt::format("review {} is already {}", review_id,
                                   util::column_text(*existing, "status").value_or("decided"));
    }
    return result;
  }
  result.run_id = util::column_int(*row, "run_id").value_or(0);
  result.step = util::column_text(*row, "step").value_or("");
  result.chart_id = util::column_text(*row, "chart_id").value_or("");
  // In the decision's transaction: review-decided subscribers hear of exactly what committed.
  fhir_subscriptions::publish_review(sql, "review-decided", review_id);
  result.signal_payload = Json{{"decision", decision},
                               {"comment", comment ? Json(*comment) : Json(nullptr)},
                               {"review_id", review_id},
                               {"decided_by", decided_by}};
  return result;
}

Json list_ledger(Sql& sql, const std::string& chart_id) {
  static const std::string kEntries = fmt::format(
      "SELECT id, revision, source_ref, kind, code, code_system, description, quantity, unit, "
      "amount, currency, amount_source, payor, {} AS created_at FROM ledger_entry "
      "WHERE chart_id = $1",
      util::sql_iso("created_at"));
  Json entries = json_rows(sql, kEntries, "t.id", {chart_id});
  double total = 0;
  for (const auto& e : entries) {
    if (e.contains("amount") && e["amount"].is_number()) total += e["amount"].get<double>();
  }
  return Json{{"chart_id", chart_id},
              {"entries", entries},
              {"count", entries.size()},
              {"total", std::round(total * 100.0) / 100.0}};
}

Json list_deliveries(Sql& sql, const std::string& chart_id) {
  // Every attempt as the journal recorded it: started, and answered unless the process died
  // during the call (answered_at null: the outcome is unknown, the resend repeats the same bytes).
  static const std::string kOutbox = fmt::format(
      "SELECT o.id, o.payor, o.kind, o.idempotency_key, o.status, o.attempts, o.last_error, "
      "{} AS delivered_at, {} AS created_at, "
      "coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'status_code', "
      "a.status_code, 'error', a.error, 'started_at', {}, 'answered_at', {}) ORDER BY a.id) "
      "FROM insurer_delivery_attempt a WHERE a.outbox_id = o.id), '[]'::json) AS attempts_detail "
      "FROM insurer_outbox o WHERE o.chart_id = $1",
      util::sql_iso("o.delivered_at"), util::sql_iso("o.created_at"), util::sql_iso("a.at"),
      util::sql_iso("a.answered_at"));
  static const std::string kBills = fmt::format(
      "SELECT d.id, d.channel, d.channel_type, d.invoice_id, d.idempotency_key, d.status, "
      "d.attempts, d.last_error, {} AS delivered_at, {} AS created_at, "
      "coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'status_code', "
      "a.status_code, 'error', a.error, 'started_at', {}, 'answered_at', {}) ORDER BY a.id) "
      "FROM bill_delivery_attempt a WHERE a.delivery_id = d.id), '[]'::json) AS attempts_detail "
      "FROM bill_delivery d WHERE d.chart_id = $1",
      util::sql_iso("d.delivered_at"), util::sql_iso("d.created_at"), util::sql_iso("a.started_at"),
      util::sql_iso("a.answered_at"));
  return Json{{"chart_id", chart_id},
              {"outbox", json_rows(sql, kOutbox, "t.id", {chart_id})},
              {"bill_deliveries", json_rows(sql, kBills, "t.id", {chart_id})}};
}

Json list_questions(Sql& sql, const std::string& chart_id) {
  static const std::string kQuestions = fmt::format(
      "SELECT id, rule_id, resource_ref, question, severity, status, opened_revision, "
      "closed_revision, {} AS created_at, {} AS closed_at FROM chart_question WHERE chart_id = $1",
      util::sql_iso("created_at"), util::sql_iso("closed_at"));
  return Json{{"chart_id", chart_id},
              {"questions", json_rows(sql, kQuestions, "t.id DESC", {chart_id})}};
}

}  // namespace chartflow::handlers
