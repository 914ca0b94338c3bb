// Missing-field rules and the scan that applies them to a chart (pure; any thread).
// A rule names a resource type and a dotted element path that each resource of that type should
// carry; every resource lacking it is a finding, which becomes a question on the chart. A rule
// without an element instead requires the chart to hold at least one resource of the type (the
// finding then concerns the Patient). Format (workflows/rules/missing-fields.yaml):
//
//   rules:
//     - id: encounter-reason                  # [a-z0-9._-], unique
//       resource: Encounter
//       element: reasonCode|reasonReference   # '|' = any of these
//       where: { element: class.code, in: [IMP, EMER] }   # optional filter (or equals: X)
//       severity: warning                     # info | warning | error
//       question: Why did this encounter take place?
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers::missing_field_scan {

struct MissingFieldRule {
  std::string id;
  std::string resource;
  std::string element;  // empty: the chart must contain a `resource`
  std::string severity;
  std::string question;
  std::string where_element;
  std::vector<std::string> where_values;

  bool requires_resource() const { return element.empty(); }
  bool applies_to(const Json& resource) const;
};

struct Finding {
  std::string rule_id;
  std::string resource_ref;  // "Encounter/<id>"; the Patient's for resource-required rules
  std::string severity;
  std::string question;
};

class RuleSet {
 public:
  // Throws std::invalid_argument naming the rule and the problem.
  static RuleSet from_json(const Json& document);
  static RuleSet load(const std::filesystem::path& file);

  const std::vector<MissingFieldRule>& rules() const { return rules_; }
  const MissingFieldRule* find(const std::string& id) const;

 private:
  std::vector<MissingFieldRule> rules_;
};

// Every finding, in rule order then entry order. Resources entered-in-error are ignored.
std::vector<Finding> scan_chart(const fhir::BundleIndex& index, const RuleSet& rules);

// Whether this Bundle can answer the question (rule, resource_ref): the rule still exists and
// the resource is in the Bundle. Only then does the absence of a finding close the question; a
// chart update that does not carry the resource leaves its question open.
bool decides_question(const fhir::BundleIndex& index, const RuleSet& rules,
                      const std::string& rule_id, const std::string& resource_ref);

}  // namespace chartflow::handlers::missing_field_scan
