#include "handlers/missing_field_scan/rules.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "handlers/fhir/fhir_json.hpp"
#include "handlers/missing_field_scan/missing_field_scan.hpp"
#include "handlers/missing_field_scan/writeback.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers::missing_field_scan {
namespace {

using testing::bundle_of;
using testing::load_json;

RuleSet repo_rules() { return RuleSet::load(testing::workflows_dir() / kDefaultRulesFile); }

std::map<std::string, std::size_t> count_by_rule(const std::vector<Finding>& findings) {
  std::map<std::string, std::size_t> out;
  for (const auto& f : findings) ++out[f.rule_id];
  return out;
}

TEST(MissingFieldRulesTest, RepoRulesLoad) {
  RuleSet rules = repo_rules();
  EXPECT_GE(rules.rules().size(), 5U);
  ASSERT_NE(rules.find("encounter-reason"), nullptr);
  EXPECT_EQ(rules.find("encounter-reason")->resource, "Encounter");
  ASSERT_NE(rules.find("coverage"), nullptr);
  EXPECT_TRUE(rules.find("coverage")->requires_resource());
  MissingFieldScanHandler handler(testing::workflows_dir());
  EXPECT_NO_THROW(handler.validate(Json{{"rules", "rules/missing-fields.yaml"}}));
  EXPECT_NO_THROW(handler.validate(Json::object()));
  EXPECT_THROW(handler.validate(Json{{"rules", "rules/none.yaml"}}), std::invalid_argument);
}

TEST(MissingFieldRulesTest, RulesFireOnTheRealChartsAsTheContentImplies) {
  const RuleSet rules = repo_rules();
  std::map<std::string, std::size_t> totals;
  for (const auto& file : testing::chart_files()) {
    const std::string name = file.filename().string();
    SCOPED_TRACE(name);
    Json bundle = load_json(file);
    fhir::BundleIndex index(bundle);
    auto findings = scan_chart(index, rules);
    auto by_rule = count_by_rule(findings);
    for (const auto& [rule, n] : by_rule) totals[rule] += n;

    // Independent counts straight from the JSON.
    std::size_t no_reason = 0, no_participant = 0, no_dosage = 0, imp_no_disposition = 0;
    for (const auto& e : bundle["entry"]) {
      const Json& r = e["resource"];
      if (r["resourceType"] == "Encounter") {
        if (!r.contains("reasonCode")) ++no_reason;
        if (!r.contains("participant")) ++no_participant;
        if (r["class"]["code"] == "IMP" &&
            !(r.contains("hospitalization") &&
              r["hospitalization"].contains("dischargeDisposition"))) {
          ++imp_no_disposition;
        }
      }
      if (r["resourceType"] == "MedicationRequest" && !r.contains("dosageInstruction")) ++no_dosage;
    }
    EXPECT_EQ(by_rule["encounter-reason"], no_reason);
    EXPECT_EQ(by_rule["encounter-practitioner"], no_participant);
    EXPECT_EQ(by_rule["medication-dosage"], no_dosage);
    EXPECT_EQ(by_rule["inpatient-discharge-disposition"], imp_no_disposition);
    // Synthea never sets these, so every chart gets one question each, about the Patient.
    EXPECT_EQ(by_rule["coverage"], 1U);
    EXPECT_EQ(by_rule["patient-primary-care-doctor"], 1U);
    EXPECT_EQ(by_rule["patient-contact"], 0U);  // every Synthea patient has a phone
    EXPECT_EQ(by_rule["claim-insurance"], 0U);
    for (const auto& f : findings) {
      EXPECT_FALSE(f.question.empty());
      EXPECT_NE(index.resolve(f.resource_ref), nullptr) << f.resource_ref;
      EXPECT_TRUE(decides_question(index, rules, f.rule_id, f.resource_ref));
    }
  }
  EXPECT_EQ(totals["encounter-practitioner"], 2U);  // the death certification, slice and full
  EXPECT_GT(totals["encounter-reason"], 100U);
  EXPECT_GT(totals["medication-dosage"], 100U);
  EXPECT_GT(totals["inpatient-discharge-disposition"], 40U);
}

TEST(MissingFieldRulesTest, DeathCertificationLacksAPractitioner) {
  Json bundle = load_json(testing::charts_dir() /
                          "enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json");
  fhir::BundleIndex index(bundle);
  auto by_rule = count_by_rule(scan_chart(index, repo_rules()));
  EXPECT_EQ(by_rule["encounter-practitioner"], 1U);
}

TEST(MissingFieldRulesTest, SuppliedFieldsAndAbsentResources) {
  const RuleSet rules = repo_rules();
  Json bundle = bundle_of({
      {{"resourceType", "Patient"}, {"id", "p"}, {"telecom", {{{"value", "555"}}}}},
      {{"resourceType", "Encounter"}, {"id", "e"}, {"class", {{"code", "IMP"}}}},
      {{"resourceType", "Encounter"}, {"id", "gone"}, {"status", "entered-in-error"}},
  });
  fhir::BundleIndex index(bundle);
  auto findings = scan_chart(index, rules);
  std::set<std::pair<std::string, std::string>> found;
  for (const auto& f : findings) found.emplace(f.rule_id, f.resource_ref);
  EXPECT_TRUE(found.count({"encounter-reason", "Encounter/e"}));
  EXPECT_TRUE(found.count({"inpatient-discharge-disposition", "Encounter/e"}));
  EXPECT_TRUE(found.count({"coverage", "Patient/p"}));
  EXPECT_FALSE(found.count({"patient-contact", "Patient/p"}));
  EXPECT_FALSE(found.count({"encounter-reason", "Encounter/gone"}));

  // A later upload that supplies the reason (and a Coverage) no longer finds them, and can
  // decide those questions; one that lacks the Encounter cannot.
  bundle["entry"][1]["resource"]["reasonCode"] = {{{"text", "checkup"}}};
  bundle["entry"].push_back({{"resource", {{"resourceType", "Coverage"}, {"id", "c"}}}});
  fhir::BundleIndex later(bundle);
  std::set<std::string> rules_found;
  for (const auto& f : scan_chart(later, rules))
    rules_found.insert(f.rule_id + " " + f.resource_ref);
  EXPECT_FALSE(rules_found.count("encounter-reason Encounter/e"));
  EXPECT_FALSE(rules_found.count("coverage Patient/p"));
  EXPECT_TRUE(decides_question(later, rules, "encounter-reason", "Encounter/e"));
  EXPECT_TRUE(decides_question(later, rules, "coverage", "Patient/p"));
  EXPECT_FALSE(decides_question(later, rules, "encounter-reason", "Encounter/elsewhere"));
  EXPECT_FALSE(decides_question(later, rules, "no-such-rule", "Encounter/e"));
  EXPECT_FALSE(decides_question(later, rules, "encounter-reason", "Patient/p"));
}

TEST(MissingFieldRulesTest, InvalidRuleFilesNameTheProblem) {
  auto error_of = [](const Json& doc) {
    try {
      RuleSet::from_json(doc);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  Json ok = {{"id", "a"}, {"resource", "Patient"}, {"element", "telecom"}, {"question", "q"}};
  EXPECT_EQ(error_of(Json{{"rules", {ok}}}), "");
  EXPECT_EQ(error_of(Json::array({ok})), "");
  EXPECT_NE(error_of(Json::object()).find("rules"), std::string::npos);
  EXPECT_NE(error_of(Json{{"rules", {ok, ok}}}).find("twice"), std::string::npos);
  Json bad = ok;
  bad["severity"] = "fatal";
  EXPECT_NE(error_of(Json{{"rules", {bad}}}).find("severity"), std::string::npos);
  bad = ok;
  bad["resource"] = "patient";
  EXPECT_NE(error_of(Json{{"rules", {bad}}}).find("resource"), std::string::npos);
  bad = ok;
  bad.erase("question");
  EXPECT_NE(error_of(Json{{"rules", {bad}}}).find("question"), std::string::npos);
  bad = ok;
  bad["id"] = "Bad Id";
  EXPECT_NE(error_of(Json{{"rules", {bad}}}).find("id"), std::string::npos);
  bad = ok;
  bad["where"] = {{"element", "class.code"}};
  EXPECT_NE(error_of(Json{{"rules", {bad}}}).find("where"), std::string::npos);
}

TEST(WritebackTest, AddsOneTaskPerQuestionDeterministically) {
  Json bundle = load_json(testing::charts_dir() /
                          "enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json");
  fhir::BundleIndex index(bundle);
  std::vector<QuestionRow> questions = {
      {1, "encounter-practitioner", "Encounter/516ed05c-b485-4c95-a975-c0ba265549dd",
       "Which practitioner?", "error", "open", "2024-05-01T10:00:00Z", ""},
      {2, "coverage", "Patient/3ed2a74a-739a-4f67-8492-c7b94e61515f", "Which policy?", "warning",
       "closed", "2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z"},
      {3, "encounter-reason", "Encounter/elsewhere", "Why?", "warning", "open",
       "2024-05-01T10:00:00Z", ""},
  };
  Json written = build_writeback_bundle(index, "chart-1", questions);
  ASSERT_EQ(written["entry"].size(), bundle["entry"].size() + 3);
  EXPECT_EQ(written["type"], bundle["type"]);
  const Json& task = written["entry"][bundle["entry"].size()];
  EXPECT_EQ(task["resource"]["resourceType"], "Task");
  EXPECT_EQ(task["resource"]["status"], "requested");
  EXPECT_EQ(task["resource"]["intent"], "order");
  EXPECT_EQ(task["resource"]["description"], "Which practitioner?");
  EXPECT_EQ(task["resource"]["focus"]["reference"],
            "urn:uuid:516ed05c-b485-4c95-a975-c0ba265549dd");
  EXPECT_EQ(task["resource"]["for"]["reference"], "urn:uuid:3ed2a74a-739a-4f67-8492-c7b94e61515f");
  EXPECT_EQ(task["request"]["method"], "PUT");
  const Json& closed = written["entry"][bundle["entry"].size() + 1];
  EXPECT_EQ(closed["resource"]["status"], "completed");
  const Json& elsewhere = written["entry"][bundle["entry"].size() + 2];
  EXPECT_EQ(elsewhere["resource"]["focus"]["reference"], "Encounter/elsewhere");

  EXPECT_EQ(build_writeback_bundle(index, "chart-1", questions).dump(), written.dump());
  EXPECT_EQ(writeback_text(index, "chart-1", questions), written.dump());
  // Writing back a chart that already carries our Tasks replaces them instead of piling up.
  fhir::BundleIndex again(written);
  Json twice = build_writeback_bundle(again, "chart-1", questions);
  EXPECT_EQ(twice["entry"].size(), written["entry"].size());
  EXPECT_EQ(writeback_text(again, "chart-1", questions), twice.dump());
  // Unusual top-level keys keep their place; a Bundle without entries falls back to the copy.
  Json odd = {
      {"resourceType", "Bundle"}, {"aaa", 1}, {"zzz", {{"k", "v"}}}, {"entry", Json::array()}};
  fhir::BundleIndex odd_index(odd);
  EXPECT_EQ(writeback_text(odd_index, "c", questions),
            build_writeback_bundle(odd_index, "c", questions).dump());
  Json no_entries = {{"resourceType", "Bundle"}};
  fhir::BundleIndex no_entries_index(no_entries);
  EXPECT_EQ(writeback_text(no_entries_index, "c", questions),
            build_writeback_bundle(no_entries_index, "c", questions).dump());
}

// With the uploaded text at hand the questions are spliced into it: the same Bundle as the
// serialised one, the chart's own bytes left as they were.
TEST(WritebackTest, SplicesTasksIntoTheUploadedText) {
  const std::string raw =
      testing::read_file(testing::charts_dir() /
                         "enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json");
  Json bundle = Json::parse(raw);
  fhir::BundleIndex index(bundle);
  std::vector<QuestionRow> questions = {
      {1, "encounter-practitioner", "Encounter/516ed05c-b485-4c95-a975-c0ba265549dd",
       "Which practitioner?", "error", "open", "2024-05-01T10:00:00Z", ""},
      {2, "coverage", "Patient/3ed2a74a-739a-4f67-8492-c7b94e61515f", "Which policy?", "warning",
       "closed", "2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z"}};
  const std::string spliced = writeback_text(index, "chart-1", questions, raw);
  const Json expected = build_writeback_bundle(index, "chart-1", questions);
  EXPECT_EQ(Json::parse(spliced), expected);
  const auto end = find_entry_array_end(raw);
  ASSERT_TRUE(end);
  EXPECT_FALSE(end->empty);
  EXPECT_EQ(spliced.substr(0, end->close), raw.substr(0, end->close));
  EXPECT_EQ(spliced.substr(spliced.size() - (raw.size() - end->close)), raw.substr(end->close));

  // A chart that carries our Tasks already has them replaced: no splice, the serialised form.
  const std::string again_text = expected.dump(2);
  fhir::BundleIndex again(expected);
  EXPECT_EQ(writeback_text(again, "chart-1", questions, again_text),
            build_writeback_bundle(again, "chart-1", questions).dump());

  // An empty entry array takes the Tasks without a leading comma.
  const std::string empty_text =
      R"({"resourceType": "Bundle", "entry": [ ], "type": "collection"})";
  Json empty = Json::parse(empty_text);
  fhir::BundleIndex empty_index(empty);
  EXPECT_EQ(Json::parse(writeback_text(empty_index, "c", questions, empty_text)),
            build_writeback_bundle(empty_index, "c", questions));
}

TEST(WritebackTest, FindsTheTopLevelEntryArrayOnly) {
  const std::string text =
      R"( {"a": "entry", "b": {"entry": [1]}, "s": "x\"]\\", "entry": [{"k": "]"}, [] ], "z": 1} )";
  const auto end = find_entry_array_end(text);
  ASSERT_TRUE(end);
  EXPECT_FALSE(end->empty);
  EXPECT_EQ(text.substr(end->close, 3), "], ");
  EXPECT_EQ(text.substr(end->close - 3, 3), "[] ");
  auto empty = find_entry_array_end(R"({"entry":[]})");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty);
  EXPECT_FALSE(find_entry_array_end(R"({"entry": [], "entry": []})")) << "duplicate key";
  EXPECT_FALSE(find_entry_array_end(R"({"entry": {}})")) << "not an array";
  EXPECT_FALSE(find_entry_array_end(R"({"other": []})")) << "no entry array";
  EXPECT_FALSE(find_entry_array_end(R"([{"entry": []}])")) << "not an object";
  EXPECT_FALSE(find_entry_array_end(R"({"entry": []} x)")) << "trailing text";
  EXPECT_FALSE(find_entry_array_end(R"({"entry": [)")) << "cut short";
  EXPECT_FALSE(find_entry_array_end(R"({"\u0065ntry": []})")) << "escaped key";
}

}  // namespace
}  // namespace chartflow::handlers::missing_field_scan
