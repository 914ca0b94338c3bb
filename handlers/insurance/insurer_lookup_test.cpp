#include "handlers/insurance/insurer_lookup.hpp"

#include <gtest/gtest.h>

#include <map>

#include "handlers/insurance/insurer_settings.hpp"
#include "handlers/insurance/outbox.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers::insurance {
namespace {

using testing::bundle_of;
using testing::load_json;

// Payors of each chart, most recent claim first (computed independently from the files).
const std::map<std::string, std::vector<std::string>>& expected_payors() {
  static const std::map<std::string, std::vector<std::string>> kExpected = {
      {"enc-fletcher-hyatt-19931005-imp-encounter-for-problem-d0e202c5.json", {"medicare"}},
      {"enc-jordan-cruickshank-20170624-emer-emergency-room-admission-b3fa30ba.json", {"medicaid"}},
      {"full-adan-portillo-22bbe238.json", {"medicare", "private"}},
      {"full-fletcher-hyatt-fe0562b5.json", {"medicare", "private"}},
      {"full-freda-o-connell-00347da0.json", {"private", "no_insurance"}},
  };
  return kExpected;
}

TEST(InsurerLookupTest, FindsThePayorsOfEveryRealChart) {
  for (const auto& file : testing::chart_files()) {
    const std::string name = file.filename().string();
    SCOPED_TRACE(name);
    Json bundle = load_json(file);
    fhir::BundleIndex index(bundle);
    auto insurers = find_insurers(index);
    std::vector<std::string> payors;
    for (const auto& i : insurers) {
      payors.push_back(i.payor);
      EXPECT_EQ(i.source, "Claim");  // no standalone Coverage in Synthea
    }
    auto it = expected_payors().find(name);
    std::vector<std::string> expected =
        it == expected_payors().end() ? std::vector<std::string>{"private"} : it->second;
    EXPECT_EQ(payors, expected);
    EXPECT_EQ(primary_insurer(index)->payor, expected.front());
  }
}

TEST(InsurerLookupTest, FallsBackToTheContainedCoverageOfTheEob) {
  Json bundle = load_json(testing::charts_dir() /
                          "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  // Drop the Claim: only the EOB (with its contained #coverage) is left.
  Json without_claim = bundle;
  without_claim["entry"] = Json::array();
  for (const auto& e : bundle["entry"]) {
    if (e["resource"]["resourceType"] != "Claim") without_claim["entry"].push_back(e);
  }
  fhir::BundleIndex index(without_claim);
  auto primary = primary_insurer(index);
  ASSERT_TRUE(primary.has_value());
  EXPECT_EQ(primary->payor, "private");
  EXPECT_EQ(primary->source, "ExplanationOfBenefit");

  // Contained Coverage with a type but no payor.
  Json eob = {{"resourceType", "ExplanationOfBenefit"},
              {"id", "e"},
              {"contained",
               {{{"resourceType", "Coverage"}, {"id", "cov"}, {"type", {{"text", "medicaid"}}}}}},
              {"insurance", {{{"focal", true}, {"coverage", {{"reference", "#cov"}}}}}}};
  Json b2 = bundle_of({eob});
  fhir::BundleIndex i2(b2);
  EXPECT_EQ(primary_insurer(i2)->payor, "medicaid");
}

TEST(InsurerLookupTest, StandaloneCoverageWins) {
  auto resources = testing::hl7_resources({"Coverage-9876B1", "Claim-760150"});
  resources.push_back({{"resourceType", "Organization"}, {"id", "2"}, {"name", "Benefits Inc."}});
  Json bundle = bundle_of(resources);
  fhir::BundleIndex index(bundle);
  auto insurers = find_insurers(index);
  ASSERT_EQ(insurers.size(), 1U);
  EXPECT_EQ(insurers[0].payor, "Benefits Inc.");
  EXPECT_EQ(insurers[0].source, "Coverage");
  EXPECT_EQ(insurers[0].ref, "Coverage/9876B1");
  // The claim's focal insurance references the same Coverage.
  EXPECT_EQ(claim_payor(index, *index.find("Claim", "760150")), "Benefits Inc.");
}

TEST(InsurerLookupTest, OfficialCoverageExamples) {
  auto coverages = testing::hl7_resources(
      {"Coverage-7546D", "Coverage-7547E", "Coverage-9876B1", "Coverage-SP1234"});
  Json bundle = bundle_of(coverages);
  fhir::BundleIndex index(bundle);
  // Organization/2 is not in the Bundle: the reference text names it.
  EXPECT_EQ(coverage_payor(index, coverages[0]), "Organization/2");
  EXPECT_EQ(coverage_payor(index, coverages[1]), "123456789");    // identifier only
  EXPECT_EQ(coverage_payor(index, coverages[3]), kSelfPayPayor);  // the patient pays
  EXPECT_EQ(find_insurers(index).size(), 3U);
  // The contained Coverage of Claim-MED-00050 pays by identifier.
  auto claim = testing::hl7_resources({"Claim-MED-00050"});
  Json cb = bundle_of(claim);
  fhir::BundleIndex ci(cb);
  EXPECT_FALSE(claim_payor(ci, claim[0]).empty());
}

TEST(InsurerLookupTest, NoInsuranceAnywhere) {
  for (const Json& bundle :
       {Json::object(), bundle_of({{{"resourceType", "Claim"}, {"insurance", "x"}}}),
        bundle_of({{{"resourceType", "Coverage"},
                    {"status", "cancelled"},
                    {"payor", {{{"display", "gone"}}}}}})}) {
    fhir::BundleIndex index(bundle);
    EXPECT_FALSE(primary_insurer(index).has_value());
  }
}

TEST(InsurerSettingsTest, EndpointsPerPayorWithDefaultAndSkips) {
  ::setenv("CHARTFLOW_TEST_INSURER", "http://127.0.0.1:9/x", 1);
  auto s = InsurerSettings::from_json(
      Json{{"timeout", "2s"},
           {"payors",
            {{"medicare", {{"url", "https://medicare.test/claims"}}},
             {"no_insurance", {{"skip", true}}},
             {"default", {{"url", "${CHARTFLOW_TEST_INSURER}"}}},
             {"unset", {{"url", "${CHARTFLOW_TEST_UNSET_VARIABLE}"}}}}}});
  EXPECT_EQ(s.timeout, std::chrono::seconds(2));
  EXPECT_EQ(s.endpoint_for("medicare")->url, "https://medicare.test/claims");
  EXPECT_EQ(s.endpoint_for("MEDICARE")->url, "https://medicare.test/claims");
  EXPECT_EQ(s.endpoint_for("private")->url, "http://127.0.0.1:9/x");
  EXPECT_TRUE(s.endpoint_for("no_insurance")->skip);
  EXPECT_EQ(s.endpoint_for("unset")->url, "");
  EXPECT_FALSE(InsurerSettings::from_json(Json::object()).endpoint_for("x").has_value());
  // Plain http:// to a non-loopback host: refused (handlers/common/outbound_settings_test.cpp).
  EXPECT_THROW(InsurerSettings::from_json(Json{{"payors", {{"x", {{"url", "http://x"}}}}}}),
               std::invalid_argument);
  EXPECT_THROW(InsurerSettings::from_json(Json{{"payors", {{"x", 5}}}}), std::invalid_argument);
  EXPECT_THROW(InsurerSettings::from_json(Json{{"timeout", "soon"}}), std::invalid_argument);
}

TEST(OutboxTest, NotificationCarriesIdsCodesAndAmountsOnly) {
  Json claim = build_claim_notification(
      "chart-1", "Patient/p1", "medicare", "claim", "key-1",
      {{"Claim/c#item1", "183452005", "http://snomed.info/sct", 1, 3750, "USD"},
       {"MedicationAdministration/m", "285018", "", 20, 3840, "USD"}});
  EXPECT_EQ(claim["resourceType"], "Claim");
  EXPECT_EQ(claim["patient"]["reference"], "Patient/p1");
  EXPECT_EQ(claim["insurer"]["display"], "medicare");
  EXPECT_EQ(claim["item"].size(), 2U);
  EXPECT_DOUBLE_EQ(claim["total"]["value"].get<double>(), 75.90);
  EXPECT_EQ(claim["identifier"][0]["value"], "key-1");
  EXPECT_FALSE(claim["item"][0].contains("description"));
}

TEST(OutboxTest, NotificationKeysAreHeaderSafe) {
  EXPECT_EQ(notification_key("run-1/billing", "claim", "c1", "medicare"),
            "run-1/billing:claim:c1:medicare");
  const std::string odd = notification_key("s", "final", "c1", "Benefits Inc.\r\nX: y");
  EXPECT_EQ(odd.find('\r'), std::string::npos);
  EXPECT_EQ(odd.find(' '), std::string::npos);
  EXPECT_EQ(odd, notification_key("s", "final", "c1", "Benefits Inc.\r\nX: y"));
  EXPECT_NE(odd, notification_key("s", "final", "c1", "Benefits Inc."));
  EXPECT_LT(notification_key("s", "claim", "c", std::string(500, 'a')).size(), 100U);
}

}  // namespace
}  // namespace chartflow::handlers::insurance
