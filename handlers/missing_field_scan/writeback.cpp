#include "handlers/missing_field_scan/writeback.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "engine/util/hash.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::missing_field_scan {
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
      {"id", util::stable_uuid(fmt::format("chartflow-question:{}:{}", chart_id, q.id))},
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

std::optional<EntryArrayEnd> find_entry_array_end(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto skip_ws = [&](std::size_t j) {
    while (j < n && (text[j] == ' ' || text[j] == '\n' || text[j] == '\r' || text[j] == '\t')) ++j;
    return j;
  };
  i = skip_ws(i);
  if (i >= n || text[i] != '{') return std::nullopt;
  int depth = 0;
  std::optional<EntryArrayEnd> found;
  int entry_depth = -1;  // depth inside the entry array while scanning it
  bool saw_entry_key = false;
  for (; i < n; ++i) {
    const char c = text[i];
    if (c == '"') {
      const std::size_t start = i;
      for (++i; i < n && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      if (i >= n) return std::nullopt;
      if (entry_depth >= 0) found->empty = false;
      if (depth != 1) continue;
      const std::size_t after = skip_ws(i + 1);
      if (after >= n || text[after] != ':') continue;  // a value, not a key
      if (text.substr(start, i + 1 - start) != "\"entry\"") continue;
      if (saw_entry_key) return std::nullopt;  // a duplicate key: let the parser's view decide
      saw_entry_key = true;
      const std::size_t open = skip_ws(after + 1);
      if (open >= n || text[open] != '[') return std::nullopt;
      i = open;
      depth = 2;
      entry_depth = 2;
      found = EntryArrayEnd{};
      continue;
    }
    if (c == '{' || c == '[') {
      if (entry_depth >= 0) found->empty = false;
      ++depth;
    } else if (c == '}' || c == ']') {
      if (entry_depth >= 0 && depth == entry_depth && c == ']') {
        found->close = i;
        entry_depth = -1;
      }
      --depth;
      if (depth == 0) {
        // Only whitespace may follow the object.
        if (skip_ws(i + 1) != n) return std::nullopt;
        return found && entry_depth < 0 ? found : std::nullopt;
      }
    } else if (entry_depth >= 0 && c != ' ' && c != '\n' && c != '\r' && c != '\t' && c != ',') {
      found->empty = false;
    }
  }
  return std::nullopt;
}

std::string writeback_text(const fhir::BundleIndex& index, const std::string& chart_id,
                           const std::vector<QuestionRow>& questions, std::string_view text) {
  const Json& source = index.bundle();
  const Json* source_entries = fhir::member(source, "entry");
  if (!text.empty() && source_entries != nullptr && source_entries->is_array() &&
      std::none_of(source_entries->begin(), source_entries->end(), is_our_task)) {
    if (auto end = find_entry_array_end(text)) {
      const bool request = with_request(source);
      std::string out;
      out.reserve(text.size() + questions.size() * 1024);
      out.append(text.substr(0, end->close));
      bool first = end->empty;
      for (const auto& q : questions) {
        if (!first) out += ',';
        first = false;
        out += task_entry(index, chart_id, q, request).dump();
      }
      out.append(text.substr(end->close));
      return out;
    }
  }
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

}  // namespace chartflow::handlers::missing_field_scan
