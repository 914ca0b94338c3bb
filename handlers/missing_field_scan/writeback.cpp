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
      {"identifier",
       Json::array({Json{{"system", kQuestionIdentifierSystem}, {"value", std::to_string(q.id)}}})},
      {"status", open ? "requested" : "completed"},
      {"intent", "order"},
      {"priority", q.severity == "error" ? "urgent" : "routine"},
      {"code",
       {{"coding",
         Json::array({Json{{"system", "urn:chartflow:missing-field-rule"}, {"code", q.rule_id}}})},
        {"text", "Missing information"}}},
      {"description", q.question},
      {"focus", {{"reference", focus}}},
      {"authoredOn", q.created_at},
      {"extension",
       Json::array({Json{{"url", "urn:chartflow:question-severity"}, {"valueCode", q.severity}}})}};
  if (const Json* patient = index.patient()) {
    task["for"] = {{"reference", index.local_reference(*patient)}};
  }
  if (!open && !q.closed_at.empty()) task["lastModified"] = q.closed_at;
  return task;
}

namespace {

Json task_entry(const fhir::BundleIndex& index, const std::string& chart_id, const QuestionRow& q,
                bool with_request) {
  Json task = question_task(index, chart_id, q);
  Json entry = {{"fullUrl", "urn:uuid:" + task["id"].get<std::string>()}};
  entry["resource"] = std::move(task);
  if (with_request) {
    entry["request"] = {
        {"method", "PUT"},
        {"url", fmt::format("Task?identifier={}|{}", kQuestionIdentifierSystem, q.id)}};
  }
  return entry;
}

bool with_request(const Json& bundle) {
  const std::string type = fhir::string_member(bundle, "type");
  return type == "transaction" || type == "batch";
}

}  // namespace

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
  const bool request = with_request(source);
  for (const auto& q : questions) entries.push_back(task_entry(index, chart_id, q, request));
  out["entry"] = std::move(entries);
  return out;
}

std::string writeback_text(const fhir::BundleIndex& index, const std::string& chart_id,
                           const std::vector<QuestionRow>& questions) {
  const Json& source = index.bundle();
  const Json* entries = fhir::member(source, "entry");
  if (!source.is_object() || entries == nullptr || !entries->is_array()) {
    return build_writeback_bundle(index, chart_id, questions).dump();
  }
  const bool request = with_request(source);
  std::string out = "{";
  bool first_key = true;
  // Object keys come out in the same (sorted) order as Json::dump writes them.
  for (const auto& [key, value] : source.items()) {
    if (!first_key) out += ',';
    first_key = false;
    out += Json(key).dump();
    out += ':';
    if (key != "entry") {
      out += value.dump();
      continue;
    }
    out += '[';
    bool first = true;
    auto add = [&](const Json& entry) {
      if (!first) out += ',';
      first = false;
      out += entry.dump();
    };
    for (const auto& entry : *entries) {
      if (!is_our_task(entry)) add(entry);
    }
    for (const auto& q : questions) add(task_entry(index, chart_id, q, request));
    out += ']';
  }
  out += '}';
  return out;
}

}  // namespace chartflow::handlers
