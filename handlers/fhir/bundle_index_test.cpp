#include "handlers/fhir/bundle_index.hpp"

#include <gtest/gtest.h>

#include "handlers/fhir/fhir_json.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers::fhir {
namespace {

using testing::bundle_of;
using testing::load_json;

TEST(BundleIndexTest, IndexesEveryChartAndResolvesItsUuidReferences) {
  for (const auto& file : testing::chart_files()) {
    SCOPED_TRACE(file.filename().string());
    Json bundle = load_json(file);
    BundleIndex index(bundle);
    ASSERT_EQ(index.resources().size(), bundle["entry"].size());
    ASSERT_NE(index.patient(), nullptr);
    // Every Encounter.subject points at the chart's Patient by urn:uuid.
    for (const Json* encounter : index.of_type("Encounter")) {
      EXPECT_EQ(index.resolve_reference((*encounter)["subject"]), index.patient());
    }
    for (const Json* r : index.resources()) {
      EXPECT_EQ(index.find(resource_type(*r), resource_id(*r)), r);
      EXPECT_EQ(index.resolve(index.ref_of(*r)), r);
      EXPECT_EQ(index.resolve(index.full_url_of(*r)), r);
    }
  }
}

TEST(BundleIndexTest, ResolvesTheReferenceKindsOfTheOfficialExample) {
  Json bundle = load_json(testing::hl7_dir() / "Bundle-bundle-references.json");
  BundleIndex index(bundle);
  const Json* patient23 = index.find("Patient", "23");
  ASSERT_NE(patient23, nullptr);
  EXPECT_EQ(index.resolve("Patient/23"), patient23);
  EXPECT_EQ(index.resolve("http://example.org/fhir/Patient/23"), patient23);
  EXPECT_NE(index.resolve("urn:uuid:04121321-4af5-424c-a0e1-ed3aab1c349d"), nullptr);
  EXPECT_EQ(index.resolve("Patient/45/_history/2"), index.find("Patient", "45"));
  // A reference to a resource that is not in the Bundle.
  EXPECT_EQ(index.resolve("http://example.org/fhir-2/Patient/1"), nullptr);
}

TEST(BundleIndexTest, UnresolvableReferencesReturnNullAndNeverThrow) {
  Json bundle = load_json(testing::charts_dir() /
                          "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  BundleIndex index(bundle);
  for (const char* ref :
       {"Encounter/123", "urn:uuid:missing", "Practitioner?identifier=http://x|1", "#nothing", "#",
        "", "   ", "/", "Patient/", "?", "Practitioner?name=smith", "lowercase/1", "http://",
        "urn:oid:1.2.3", "Encounter/123/_history/", "%%%", "Practitioner?identifier="}) {
    SCOPED_TRACE(ref);
    EXPECT_EQ(index.resolve(ref), nullptr);
  }
  for (const Json& odd :
       {Json(nullptr), Json(42), Json::array(), Json::object(), Json{{"reference", 5}},
        Json{{"identifier", "x"}}, Json{{"identifier", {{"value", 7}}}}}) {
    EXPECT_EQ(index.resolve_reference(odd), nullptr);
  }
}

TEST(BundleIndexTest, ResolvesConditionalReferencesByIdentifier) {
  Json bundle = bundle_of({
      {{"resourceType", "Practitioner"},
       {"id", "p1"},
       {"identifier", {{{"system", "http://hl7.org/fhir/sid/us-npi"}, {"value", "123"}}}}},
      {{"resourceType", "Practitioner"},
       {"id", "p2"},
       {"identifier", {{{"system", "http://other"}, {"value", "123"}}}}},
  });
  BundleIndex index(bundle);
  EXPECT_EQ(index.resolve("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|123"),
            index.find("Practitioner", "p1"));
  EXPECT_EQ(index.resolve("Practitioner?identifier=http%3A%2F%2Fother%7C123"),
            index.find("Practitioner", "p2"));
  // Without a system both match: ambiguous, so unresolved.
  EXPECT_EQ(index.resolve("Practitioner?identifier=123"), nullptr);
  EXPECT_EQ(index.resolve("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999"), nullptr);
  EXPECT_EQ(index.resolve("Patient?identifier=http://hl7.org/fhir/sid/us-npi|123"), nullptr);
  // A logical reference (identifier only) resolves the same way.
  Json logical = {{"type", "Practitioner"},
                  {"identifier", {{"system", "http://other"}, {"value", "123"}}}};
  EXPECT_EQ(index.resolve_reference(logical), index.find("Practitioner", "p2"));
}

TEST(BundleIndexTest, ResolvesContainedReferencesInTheirContainer) {
  Json eob = load_json(testing::charts_dir() /
                       "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  BundleIndex index(eob);
  const Json* e = index.of_type("ExplanationOfBenefit").front();
  const Json* coverage = index.resolve("#coverage", e);
  ASSERT_NE(coverage, nullptr);
  EXPECT_EQ(resource_type(*coverage), "Coverage");
  EXPECT_EQ(index.resolve("#coverage"), nullptr);  // no container given
  EXPECT_EQ(index.resolve("#", e), e);
}

TEST(BundleIndexTest, ToleratesMalformedEntries) {
  Json bundle = {
      {"resourceType", "Bundle"},
      {"entry", Json::array({Json(1), Json::object(), Json{{"resource", "x"}},
                             Json{{"resource", {{"id", "no-type"}}}},
                             Json{{"fullUrl", 5}, {"resource", {{"resourceType", "Patient"}}}},
                             Json{{"resource", {{"resourceType", 7}, {"id", "x"}}}}})}};
  BundleIndex index(bundle);
  EXPECT_EQ(index.resources().size(), 3U);
  ASSERT_NE(index.patient(), nullptr);
  EXPECT_EQ(index.ref_of(*index.patient()), "Patient");
  const Json null_bundle;
  BundleIndex empty(null_bundle);
  EXPECT_TRUE(empty.resources().empty());
  EXPECT_EQ(empty.patient(), nullptr);
  EXPECT_TRUE(empty.of_type("Claim").empty());
}

TEST(FhirJsonTest, GuardedAccessorsNeverThrow) {
  Json odd = {{"s", "text"},       {"n", 2.5},    {"ns", "3.25"},   {"a", {1, 2}},
              {"o", {{"k", "v"}}}, {"b", "true"}, {"null", nullptr}};
  EXPECT_EQ(string_member(odd, "s"), "text");
  EXPECT_EQ(string_member(odd, "n"), "");
  EXPECT_EQ(string_member(Json::array(), "s"), "");
  EXPECT_EQ(number_member(odd, "n"), 2.5);
  EXPECT_EQ(number_member(odd, "ns"), 3.25);
  EXPECT_FALSE(number_member(odd, "s").has_value());
  EXPECT_EQ(array_member(odd, "a").size(), 2U);
  EXPECT_TRUE(array_member(odd, "o").empty());
  EXPECT_TRUE(object_member(odd, "a").empty());
  EXPECT_TRUE(bool_member(odd, "b", false));
  EXPECT_EQ(member(odd, "null"), nullptr);
  EXPECT_EQ(member(Json("x"), "s"), nullptr);
}

TEST(FhirJsonTest, ElementPathsFanOutOverArrays) {
  Json encounter = {
      {"participant", {{{"type", Json::array()}}, {{"individual", {{"reference", "x"}}}}}},
      {"hospitalization", {{"dischargeDisposition", {{"text", "home"}}}}},
      {"reasonCode", Json::array()}};
  EXPECT_TRUE(element_present(encounter, "participant.individual"));
  EXPECT_TRUE(element_present(encounter, "hospitalization.dischargeDisposition"));
  EXPECT_FALSE(element_present(encounter, "reasonCode"));
  EXPECT_TRUE(element_present(encounter, "reasonCode|participant"));
  EXPECT_FALSE(element_present(encounter, "participant.period"));
  EXPECT_FALSE(element_present(encounter, "nothing.at.all"));
  EXPECT_FALSE(element_present(Json(3), "x"));
  EXPECT_EQ(element_values(encounter, "participant").size(), 2U);
}

TEST(FhirJsonTest, CodingsAndText) {
  Json cc = {{"coding", {{{"system", "s"}, {"code", "c"}, {"display", "Disp"}}}}};
  EXPECT_EQ(concept_text(cc), "Disp");
  EXPECT_TRUE(has_code(cc, "s", "c"));
  EXPECT_FALSE(has_code(cc, "t", "c"));
  EXPECT_TRUE(has_code(cc, "", "c"));
  EXPECT_EQ(concept_text(Json{{"text", "T"}, {"coding", 5}}), "T");
  EXPECT_EQ(concept_text(Json{{"code", "bare"}}), "bare");  // a bare Coding
  EXPECT_FALSE(first_coding(Json{{"coding", {1, "x", nullptr}}}).has_value());
  EXPECT_EQ(concept_text(Json("x")), "");
}

TEST(FhirJsonTest, PersonNames) {
  auto patients = testing::hl7_resources({"Patient-f001", "Patient-ch-example", "Patient-newborn"});
  EXPECT_FALSE(person_name(patients[0]).empty());
  EXPECT_FALSE(person_name(patients[1]).empty());  // name only as text
  EXPECT_EQ(person_name(patients[2]), "");
  EXPECT_EQ(person_name(Json{{"name", "not an array"}}), "");
}

TEST(FhirJsonTest, Cents) {
  EXPECT_EQ(to_cents(15947.33), 1594733);
  EXPECT_EQ(to_cents(0.1 + 0.2), 30);
  EXPECT_EQ(format_cents(1594733), "15947.33");
  EXPECT_EQ(format_cents(5), "0.05");
  EXPECT_EQ(format_cents(-75), "-0.75");
  EXPECT_EQ(format_cents(0), "0.00");
}

}  // namespace
}  // namespace chartflow::handlers::fhir
