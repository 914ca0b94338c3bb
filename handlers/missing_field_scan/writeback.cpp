#include "handlers/missing_field_scan/writeback.hpp"

#include <fmt/format.h>

#include "handlers/common/hash.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers {
namespace {

bool is_our_task(const Json& entry) {
  const Json* resource = fhir::member(entry, "resource");
  if (resource == nullptr || fhir::resource_type(*resource) != "Task") return false;
  for (const auto& id : fhir::array_member(*resource, "identifier")) {
    if (fhir::string_member(id, "system") == kQuestionIdentifierSystem) return true;
  }
  return false;
}

}  // namespace

Json question_task(const fhir::BundleIndex& index, const std::string& chart_id,
                   const QuestionRow& q) {
  const bool open = q.status != "closed";
  std::string focus = q.resource_ref;
  if (const Json* target = index.resolve(q.resource_ref)) focus = index.local_reference(*target);
  Json task = {
      {"resourceType", "Task"},
      {"id", stable_uuid(fmt::format("chartflow-question:{}:{}", chart_id, q.id))},
      {"identifier", Json::array({Json{{"system", kQuestionIdentifierSystem},
                                       {"value", std::to_string(q.id)}}})},
      {"status", open ? "requested" : "completed"},
      {"intent", "order"},
      {"priority", q.severity == "error" ? "urgent" : "routine"},
      {"code",
       {{"coding", Json::array({Json{{"system", "urn:chartflow:missing-field-rule"},
                                     {"code", q.rule_id}}})},
        {"text", "Missing information"}}},
      {"description", q.question},
      {"focus", {{"reference", focus}}},
      {"authoredOn", q.created_at},
      {"extension", Json::array({Json{{"url", "urn:chartflow:question-severity"},
                                      {"valueCode", q.severity}}})}};
  if (const Json* patient = index.patient()) {
    task["for"] = {{"reference", index.local_reference(*patient)}};
  }
  if (!open && !q.closed_at.empty()) task["lastModified"] = q.closed_at;
  return task;
}

Json build_writeback_bundle(const fhir::BundleIndex& index, const std::string& chart_id,
                            const std::vector<QuestionRow>& questions) {
  const Json& source = index.bundle();
  Json out = Json::object();
  for (const auto& [key, value] : source.items()) {
    if (key != "entry") out[key] = value;
  }
  Json entries = Json::array();
  for (const auto& entry : fhir::array_member(source, "entry")) {
    if (!is_our_task(entry)) entries.push_back(entry);
  }
  const std::string type = fhir::string_member(source, "type");
  const bool with_request = type == "transaction" || type == "batch";
  for (const auto& q : questions) {
    Json task = question_task(index, chart_id, q);
    Json entry = {{"fullUrl", "urn:uuid:" + task["id"].get<std::string>()}};
    entry["resource"] = std::move(task);
    if (with_request) {
      entry["request"] = {
          {"method", "PUT"},
          {"url", fmt::format("Task?identifier={}|{}", kQuestionIdentifierSystem, q.id)}};
    }
    entries.push_back(std::move(entry));
  }
  out["entry"] = std::move(entries);
  return out;
}

}  // namespace chartflow::handlers
