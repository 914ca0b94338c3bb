// Handler `missing_field_scan`: applies the missing-field rules to the uploaded chart revision,
// keeps one open question per finding in chart_question, closes questions a newer upload
// answers, and writes the chart back as a new revision carrying the questions as FHIR Tasks.
// Step settings: {"rules": "rules/missing-fields.yaml"} (relative to the workflows dir).
// Output: {"findings", "open_questions", "opened", "closed", "writeback_revision" (or null)}.
// Idempotent: questions are unique per open finding, and a write-back with identical content
// on the same upload is reused. Shared by all workers; rule files are cached behind a mutex.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/handler.hpp"
#include "handlers/missing_field_scan/rules.hpp"

namespace chartflow::handlers::missing_field_scan {

inline constexpr const char* kDefaultRulesFile = "rules/missing-fields.yaml";

class MissingFieldScanHandler : public Handler {
 public:
  explicit MissingFieldScanHandler(std::filesystem::path workflows_dir);
  StepOutcome run(StepContext& ctx) override;
  void validate(const Json& config) const override;

  // Loads (once) the rule file named by `rules_setting`, relative to the workflows dir.
  std::shared_ptr<const RuleSet> rules(const std::string& rules_setting) const;

 private:
  const std::filesystem::path workflows_dir_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::shared_ptr<const RuleSet>> rules_;
};

}  // namespace chartflow::handlers::missing_field_scan
