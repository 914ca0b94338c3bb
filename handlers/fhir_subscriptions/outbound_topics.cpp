#include "handlers/fhir_subscriptions/outbound_topics.hpp"

#include <fmt/format.h>

#include "engine/signals.hpp"
#include "engine/util/sql_rows.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

constexpr const char* kTopicBase = "http://chartflow.example/fhir/SubscriptionTopic/";

// Locks each matching subscription's row in id order (two publishers never deadlock) and takes
// its next number; the lock is held until the publishing transaction commits, so a later
// number never becomes visible before an earlier one.
constexpr const char* kNextNumbers =
    "UPDATE fhir_out_subscription s SET events = events + 1, updated_at = now() "
    "FROM (SELECT id FROM fhir_out_subscription WHERE topic = $1 AND status <> 'off' "
    "AND (patient IS NULL OR patient = $2) ORDER BY id FOR NO KEY UPDATE) m "
    "WHERE s.id = m.id RETURNING s.id, s.events";

constexpr const char* kInsertNotification =
    "INSERT INTO fhir_out_notification (subscription_id, event_number, focus, patient, resource) "
    "VALUES ($1, $2, $3, NULLIF($4, ''), $5::jsonb)";

// The deliverers to wake, in run order (each wake locks its run until the commit).
constexpr const char* kDeliverers =
    "SELECT run_id FROM fhir_out_delivery WHERE subscription_id = ANY($1::text[]) "
    "AND run_id IS NOT NULL ORDER BY run_id";

constexpr const char* kReview =
    "SELECT id, status, task::text AS task, decision FROM review WHERE id = $1";

constexpr const char* kQuestion =
    "SELECT q.id, q.rule_id, q.resource_ref, q.question, q.severity, q.status, c.patient_ref, "
    "to_char(q.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS authored "
    "FROM chart_question q JOIN chart c ON c.chart_id = q.chart_id WHERE q.id = $1";

constexpr const char* kInvoice =
    "SELECT i.id, i.status, i.fhir::text AS fhir, c.patient_ref FROM invoice i "
    "JOIN chart c ON c.chart_id = i.chart_id WHERE i.id = $1";

constexpr const char* kChartPatient = "SELECT patient_ref FROM chart WHERE chart_id = $1";

}  // namespace

const std::vector<Topic>& topics() {
  static const std::vector<Topic> kTopics = {
      {"review-requested", "Doctor review requested", "Task",
       "A chart update was assigned to a doctor for review"},
      {"review-decided", "Doctor review decided", "Task", "A doctor approved or rejected a review"},
      {"question-opened", "Chart question opened", "Task",
       "The missing-field scan asked a question about a chart"},
      {"question-closed", "Chart question closed", "Task", "A chart question was answered"},
      {"bill-issued", "Bill issued", "Invoice", "A discharged patient's invoice was issued"},
      {"run-failed", "Workflow run failed", "Basic", "A workflow run ended in failure"},
  };
  return kTopics;
}

std::string topic_url(const std::string& code) { return kTopicBase + code; }

const Topic* find_topic(const std::string& canonical_or_code) {
  std::string code = canonical_or_code;
  if (code.rfind(kTopicBase, 0) == 0) code = code.substr(std::string(kTopicBase).size());
  for (const auto& t : topics())
    if (code == t.code) return &t;
  return nullptr;
}

Json topic_resource(const Topic& t) {
  return {{"resourceType", "SubscriptionTopic"},
          {"id", t.code},
          {"url", topic_url(t.code)},
          {"title", t.title},
          {"status", "active"},
          {"description", t.description},
          {"resourceTrigger",
           Json::array({{{"description", t.description}, {"resource", t.resource}}})},
          {"canFilterBy", Json::array({{{"description", "The Patient the event is about"},
                                        {"resource", t.resource},
                                        {"filterParameter", "patient"}}})},
          {"notificationShape", Json::array({{{"resource", t.resource}}})}};
}

int publish(Sql& sql, const std::string& topic, const PublishedEvent& event) {
  const Json rows = util::query_rows(sql, kNextNumbers, {topic, event.patient});
  const std::string resource =
      event.resource.is_null() ? std::string("null") : event.resource.dump();
  std::string ids = "{";
  for (const auto& row : rows) {
    const std::string id = util::column_text(row, "id").value_or("");
    util::query_rows(sql, kInsertNotification,
                     {id, util::column_text(row, "events"), event.focus, event.patient, resource});
    ids += (ids.size() > 1 ? "," : "") + id;  // ids are hex: no quoting needed
  }
  if (rows.empty()) return 0;
  // The deliverers learn of the event when it commits, instead of polling for it.
  for (const auto& d : util::query_rows(sql, kDeliverers, {ids + "}"}))
    wake_run(sql, util::column_int(d, "run_id").value_or(0), kDeliverSignal);
  return static_cast<int>(rows.size());
}

int publish_review(Sql& sql, const std::string& topic, std::int64_t review_id) {
  auto row = util::query_one(sql, kReview, {std::to_string(review_id)});
  if (!row) return 0;
  Json task = Json::parse(util::column_text(*row, "task").value_or("{}"));
  const std::string id = fmt::format("review-{}", review_id);
  task["id"] = id;
  const std::string status = util::column_text(*row, "status").value_or("pending");
  if (status != "pending") {
    task["status"] = "completed";
    task["businessStatus"] = {{"text", status}};
  }
  PublishedEvent e;
  e.focus = "Task/" + id;
  if (task.contains("for")) e.patient = task["for"].value("reference", "");
  e.resource = std::move(task);
  return publish(sql, topic, e);
}

int publish_question(Sql& sql, const std::string& topic, std::int64_t question_id) {
  auto row = util::query_one(sql, kQuestion, {std::to_string(question_id)});
  if (!row) return 0;
  const std::string id = fmt::format("question-{}", question_id);
  const bool open = util::column_text(*row, "status").value_or("open") == "open";
  Json task = {{"resourceType", "Task"},
               {"id", id},
               {"status", open ? "requested" : "completed"},
               {"intent", "order"},
               {"priority",
                util::column_text(*row, "severity").value_or("") == "error" ? "urgent" : "routine"},
               {"code", {{"text", util::column_text(*row, "rule_id").value_or("")}}},
               {"description", util::column_text(*row, "question").value_or("")},
               {"focus", {{"reference", util::column_text(*row, "resource_ref").value_or("")}}},
               {"authoredOn", util::column_text(*row, "authored").value_or("")}};
  PublishedEvent e;
  e.focus = "Task/" + id;
  e.patient = util::column_text(*row, "patient_ref").value_or("");
  if (!e.patient.empty()) task["for"] = {{"reference", e.patient}};
  e.resource = std::move(task);
  return publish(sql, topic, e);
}

int publish_invoice(Sql& sql, std::int64_t invoice_id) {
  auto row = util::query_one(sql, kInvoice, {std::to_string(invoice_id)});
  if (!row) return 0;
  Json invoice = Json::parse(util::column_text(*row, "fhir").value_or("{}"));
  const std::string id = fmt::format("invoice-{}", invoice_id);
  invoice["id"] = id;
  invoice["status"] = util::column_text(*row, "status").value_or("issued");
  PublishedEvent e;
  e.focus = "Invoice/" + id;
  e.patient = util::column_text(*row, "patient_ref").value_or("");
  e.resource = std::move(invoice);
  return publish(sql, "bill-issued", e);
}

int publish_run_failed(Sql& sql, std::int64_t run_id, const std::string& workflow,
                       const std::string& chart_id) {
  const std::string id = fmt::format("run-{}", run_id);
  Json basic = {
      {"resourceType", "Basic"},
      {"id", id},
      {"code",
       {{"coding", Json::array({{{"system", "http://chartflow.example/fhir/CodeSystem/event"},
                                 {"code", "run-failed"}}})}}},
      {"identifier",
       Json::array({{{"system", "urn:chartflow:run"}, {"value", std::to_string(run_id)}},
                    {{"system", "urn:chartflow:workflow"}, {"value", workflow}}})}};
  PublishedEvent e;
  e.focus = "Basic/" + id;
  if (!chart_id.empty())
    if (auto row = util::query_one(sql, kChartPatient, {chart_id}))
      e.patient = util::column_text(*row, "patient_ref").value_or("");
  if (!e.patient.empty()) basic["subject"] = {{"reference", e.patient}};
  e.resource = std::move(basic);
  return publish(sql, "run-failed", e);
}

}  // namespace chartflow::handlers::fhir_subscriptions
