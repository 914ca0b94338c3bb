#include "handlers/fhir_subscriptions/outbound_topics.hpp"

#include <fmt/format.h>

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

constexpr const char* kReview =
    "SELECT id, status, task::text AS task, decision FROM review WHERE id = $1";

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
  for (const auto& row : rows) {
    util::query_rows(sql, kInsertNotification,
                     {util::column_text(row, "id"), util::column_text(row, "events"), event.focus,
                      event.patient, resource});
  }
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

}  // namespace chartflow::handlers::fhir_subscriptions
