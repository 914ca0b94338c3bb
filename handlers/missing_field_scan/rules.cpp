#include "handlers/missing_field_scan/rules.hpp"

#include <fmt/format.h>

#include <cctype>
#include <set>
#include <stdexcept>

#include "handlers/common/config_file.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::missing_field_scan {
namespace {

bool valid_rule_id(const std::string& id) {
  if (id.empty() || id.size() > 100) return false;
  for (char c : id) {
    auto u = static_cast<unsigned char>(c);
    if (std::islower(u) == 0 && std::isdigit(u) == 0 && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

bool valid_type(const std::string& type) {
  if (type.empty() || std::isupper(static_cast<unsigned char>(type.front())) == 0) return false;
  for (char c : type) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

bool valid_path(const std::string& path) {
  for (char c : path) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '|' && c != '_' &&
        c != '[' && c != ']') {
      return false;
    }
  }
  return true;
}

std::string scalar_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  return {};
}

bool live(const Json& resource) {
  return fhir::string_member(resource, "status") != "entered-in-error";
}

}  // namespace

bool MissingFieldRule::applies_to(const Json& resource) const {
  if (where_element.empty()) return true;
  for (const Json* v : fhir::element_values(resource, where_element)) {
    std::string text = scalar_text(*v);
    for (const auto& wanted : where_values) {
      if (text == wanted) return true;
    }
  }
  return false;
}

RuleSet RuleSet::from_json(const Json& document) {
  const Json* list = &document;
  if (document.is_object()) list = fhir::member(document, "rules");
  if (list == nullptr || !list->is_array()) {
    throw std::invalid_argument("missing-field rules: expected a list under 'rules'");
  }
  RuleSet set;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& r = (*list)[i];
    if (!r.is_object())
      throw std::invalid_argument(fmt::format("rule #{} is not a mapping", i + 1));
    MissingFieldRule rule;
    rule.id = fhir::string_member(r, "id");
    if (!valid_rule_id(rule.id)) {
      throw std::invalid_argument(
          fmt::format("rule #{}: 'id' must be 1-100 characters of a-z 0-9 . _ -", i + 1));
    }
    if (!ids.insert(rule.id).second) {
      throw std::invalid_argument(fmt::format("rule '{}' is defined twice", rule.id));
    }
    rule.resource = fhir::string_member(r, "resource");
    if (!valid_type(rule.resource)) {
      throw std::invalid_argument(
          fmt::format("rule '{}': 'resource' must be a FHIR resource type", rule.id));
    }
    rule.element = fhir::string_member(r, "element");
    if (!valid_path(rule.element)) {
      throw std::invalid_argument(
          fmt::format("rule '{}': 'element' is not a dotted path", rule.id));
    }
    rule.severity = fhir::string_member(r, "severity");
    if (rule.severity.empty()) rule.severity = "warning";
    if (rule.severity != "info" && rule.severity != "warning" && rule.severity != "error") {
      throw std::invalid_argument(
          fmt::format("rule '{}': 'severity' must be info, warning or error", rule.id));
    }
    rule.question = fhir::string_member(r, "question");
    if (rule.question.empty()) {
      throw std::invalid_argument(fmt::format("rule '{}': 'question' is required", rule.id));
    }
    if (const Json* where = fhir::member(r, "where")) {
      rule.where_element = fhir::string_member(*where, "element");
      if (rule.where_element.empty() || !valid_path(rule.where_element)) {
        throw std::invalid_argument(fmt::format("rule '{}': 'where.element' is required", rule.id));
      }
      if (const Json* eq = fhir::member(*where, "equals"))
        rule.where_values.push_back(scalar_text(*eq));
      for (const auto& v : fhir::array_member(*where, "in"))
        rule.where_values.push_back(scalar_text(v));
      if (rule.where_values.empty()) {
        throw std::invalid_argument(
            fmt::format("rule '{}': 'where' needs 'equals' or 'in'", rule.id));
      }
    }
    set.rules_.push_back(std::move(rule));
  }
  return set;
}

RuleSet RuleSet::load(const std::filesystem::path& file) {
  Json document = load_config_file(file);
  try {
    return from_json(document);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("{}: {}", file.string(), e.what()));
  }
}

const MissingFieldRule* RuleSet::find(const std::string& id) const {
  for (const auto& r : rules_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

std::vector<Finding> scan_chart(const fhir::BundleIndex& index, const RuleSet& rules) {
  std::vector<Finding> findings;
  const Json* patient = index.patient();
  for (const auto& rule : rules.rules()) {
    const auto& resources = index.of_type(rule.resource);
    if (rule.requires_resource()) {
      bool any = false;
      for (const Json* r : resources) any = any || (live(*r) && rule.applies_to(*r));
      if (!any && patient != nullptr) {
        findings.push_back({rule.id, index.ref_of(*patient), rule.severity, rule.question});
      }
      continue;
    }
    for (const Json* r : resources) {
      if (!live(*r) || !rule.applies_to(*r)) continue;
      if (fhir::element_present(*r, rule.element)) continue;
      findings.push_back({rule.id, index.ref_of(*r), rule.severity, rule.question});
    }
  }
  return findings;
}

bool decides_question(const fhir::BundleIndex& index, const RuleSet& rules,
                      const std::string& rule_id, const std::string& resource_ref) {
  const MissingFieldRule* rule = rules.find(rule_id);
  if (rule == nullptr) return false;
  if (rule->requires_resource()) {
    const Json* patient = index.patient();
    return patient != nullptr && index.ref_of(*patient) == resource_ref;
  }
  const Json* resource = index.resolve(resource_ref);
  return resource != nullptr && fhir::resource_type(*resource) == rule->resource;
}

}  // namespace chartflow::handlers::missing_field_scan
