#include "handlers/doctor_review/doctor_lookup.hpp"

#include <gtest/gtest.h>

#include <map>

#include "handlers/doctor_review/doctor_review.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers::doctor_review {
namespace {

using testing::bundle_of;
using testing::chart_files;
using testing::load_json;

// NPI of the first practitioner of each chart's most recent encounter with participants
// (computed independently from the files). The death certification has no participant and its
// EOB care team names only {"display": "Unknown"}: nobody, so the fallback queue.
const std::map<std::string, std::string>& expected_npis() {
  static const std::map<std::string, std::string> kExpected = {
      {"enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-8b7f6202.json", "160"},
      {"enc-abdul-koepp-20170328-imp-non-urgent-orthopedic-admission-00f7b7ce.json", "160"},
      {"enc-alberto-atencio-20070604-emer-emergency-room-admission-4ce65733.json", "140"},
      {"enc-alejandro-riojas-20081214-emer-emergency-encounter-0e369760.json", "250"},
      {"enc-brady-kuhlman-20010718-imp-encounter-inpatient-224a9d89.json", "590"},
      {"enc-filiberto-ryan-20171228-imp-encounter-inpatient-6bd1936c.json", "430"},
      {"enc-fletcher-hyatt-19931005-imp-encounter-for-problem-d0e202c5.json", "890"},
      {"enc-freda-o-connell-20191207-amb-encounter-for-check-up-12b4020a.json", "300"},
      {"enc-garrett-thompson-19720330-emer-emergency-room-admission-f3ca8bee.json", "40"},
      {"enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json", ""},
      {"enc-jordan-cruickshank-20170624-emer-emergency-room-admission-b3fa30ba.json", "110"},
      {"enc-josue-sipes-20200516-amb-encounter-for-check-up-procedure-31609b48.json", "290"},
      {"enc-lemuel-hodkiewicz-20000223-emer-emergency-room-admission-4ec4574a.json", "580"},
      {"enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json", "580"},
      {"enc-lemuel-hodkiewicz-20071214-amb-encounter-for-check-up-procedure-262638e3.json", "580"},
      {"enc-lemuel-hodkiewicz-20111207-amb-encounter-for-symptom-d973fd23.json", "580"},
      {"enc-lemuel-hodkiewicz-20111223-amb-encounter-for-check-up-procedure-2d1721fa.json", "580"},
      {"enc-lemuel-hodkiewicz-20141226-amb-encounter-for-check-up-procedure-7886e50f.json", "580"},
      {"enc-lemuel-hodkiewicz-20171229-amb-encounter-for-check-up-procedure-20757039.json", "580"},
      {"enc-lemuel-hodkiewicz-20210101-amb-encounter-for-check-up-procedure-7e99ce10.json", "580"},
      {"enc-liz-conn-20120929-imp-admission-to-surgical-department-b262dced.json", "150"},
      {"enc-marc-corkery-20210112-emer-emergency-room-admission-procedure-ae68f78d.json", "350"},
      {"enc-maria-luisa-razo-20120711-amb-encounter-for-check-up-procedure-bf27cce6.json", "520"},
      {"enc-oralia-stark-20141009-amb-encounter-for-check-up-procedure-210dd382.json", "430"},
      {"enc-raymon-kris-20180614-imp-non-urgent-orthopedic-admission-5d534e2f.json", "160"},
      {"enc-rudolf-weber-20151117-imp-encounter-inpatient-8070b325.json", "240"},
      {"enc-trent-jaskolski-19930818-imp-encounter-inpatient-12c7cdb8.json", "240"},
      {"full-adan-portillo-22bbe238.json", "520"},
      {"full-alberto-atencio-fc712d1f.json", "370"},
      {"full-clemente-kreiger-1484a42d.json", "520"},
      {"full-fletcher-hyatt-fe0562b5.json", "890"},
      {"full-freda-o-connell-00347da0.json", "300"},
      {"full-garrett-thompson-5a72e290.json", "40"},
      {"full-gustavo-mejia-59a8543c.json", "620"},
      {"full-lemuel-hodkiewicz-ece76cc5.json", "580"},
  };
  return kExpected;
}

TEST(DoctorLookupTest, FindsThePractitionerOfEveryChartWithEncounterParticipants) {
  const auto files = chart_files();
  ASSERT_EQ(files.size(), expected_npis().size());
  for (const auto& file : files) {
    const std::string name = file.filename().string();
    SCOPED_TRACE(name);
    Json bundle = load_json(file);
    fhir::BundleIndex index(bundle);
    auto doctor = find_primary_doctor(index);
    const std::string& npi = expected_npis().at(name);
    if (npi.empty()) {
      EXPECT_FALSE(doctor.has_value());  // -> the fallback queue
      continue;
    }
    ASSERT_TRUE(doctor.has_value());
    EXPECT_EQ(doctor->source, "encounter");
    EXPECT_EQ(doctor->npi, npi);
    EXPECT_EQ(doctor->assignee, npi);
    EXPECT_EQ(doctor->practitioner_ref.rfind("Practitioner/", 0), 0U);
    EXPECT_FALSE(doctor->display.empty());
  }
}

TEST(DoctorLookupTest, PrefersGeneralPractitioner) {
  auto r = testing::hl7_resources({"Patient-glossy", "Practitioner-example", "Encounter-f001"});
  Json bundle = bundle_of(r);
  fhir::BundleIndex index(bundle);
  auto doctor = find_primary_doctor(index);
  ASSERT_TRUE(doctor.has_value());
  EXPECT_EQ(doctor->source, "generalPractitioner");
  EXPECT_EQ(doctor->npi, "");  // its identifier is not an NPI
  EXPECT_EQ(doctor->assignee, "Practitioner/example");
}

TEST(DoctorLookupTest, UnresolvedPractitionerReferencesStillCount) {
  // Patient-infant-mom names Practitioner/21B, which is not in the Bundle.
  auto r = testing::hl7_resources({"Patient-infant-mom"});
  Json bundle = bundle_of(r);
  fhir::BundleIndex index(bundle);
  auto doctor = find_primary_doctor(index);
  ASSERT_TRUE(doctor.has_value());
  EXPECT_EQ(doctor->assignee, "Practitioner/21B");

  Json conditional = bundle_of(
      {{{"resourceType", "Patient"},
        {"id", "p"},
        {"generalPractitioner",
         {{{"reference", "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|4711"}}}}}});
  fhir::BundleIndex conditional_index(conditional);
  doctor = find_primary_doctor(conditional_index);
  ASSERT_TRUE(doctor.has_value());
  EXPECT_EQ(doctor->assignee, "4711");
}

TEST(DoctorLookupTest, PrefersThePrimaryPerformer) {
  Json bundle = bundle_of({
      {{"resourceType", "Patient"}, {"id", "p"}},
      {{"resourceType", "Practitioner"},
       {"id", "a"},
       {"identifier", {{{"system", kNpiSystem}, {"value", "1"}}}}},
      {{"resourceType", "Practitioner"},
       {"id", "b"},
       {"identifier", {{{"system", kNpiSystem}, {"value", "2"}}}}},
      {{"resourceType", "Encounter"},
       {"id", "e"},
       {"participant",
        {{{"individual", {{"reference", "Practitioner/a"}}}},
         {{"type",
           {{{"coding",
              {{{"system", "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"},
                {"code", "PPRF"}}}}}}},
          {"individual", {{"reference", "Practitioner/b"}}}}}}},
  });
  fhir::BundleIndex index(bundle);
  auto doctor = find_primary_doctor(index);
  ASSERT_TRUE(doctor.has_value());
  EXPECT_EQ(doctor->assignee, "2");
}

TEST(DoctorLookupTest, FallsBackToThePrimaryCareTeamMember) {
  Json bundle = bundle_of({
      {{"resourceType", "Patient"}, {"id", "p"}},
      {{"resourceType", "Encounter"},
       {"id", "e"},
       {"participant", {{{"individual", {{"reference", "RelatedPerson/x"}}}}}}},
      {{"resourceType", "ExplanationOfBenefit"},
       {"id", "eob"},
       {"careTeam",
        {{{"provider", {{"reference", "Practitioner/other"}}},
          {"role", {{"coding", {{{"code", "assist"}}}}}}},
         {{"provider", {{"reference", "Practitioner/pcp"}}},
          {"role", {{"coding", {{{"code", "primary"}}}}}}}}}},
  });
  fhir::BundleIndex index(bundle);
  auto doctor = find_primary_doctor(index);
  ASSERT_TRUE(doctor.has_value());
  EXPECT_EQ(doctor->source, "careTeam");
  EXPECT_EQ(doctor->assignee, "Practitioner/pcp");
}

TEST(DoctorLookupTest, OddChartsFindNobodyWithoutCrashing) {
  for (const Json& bundle :
       {Json::object(),
        Json{{"entry", {{{"resource", {{"resourceType", "Encounter"}, {"participant", "x"}}}}}}},
        Json{{"entry",
              {{{"resource",
                 {{"resourceType", "Patient"},
                  {"generalPractitioner", {{{"reference", "Organization/1"}}, 5, "x"}}}}}}}}}) {
    fhir::BundleIndex index(bundle);
    EXPECT_FALSE(find_primary_doctor(index).has_value());
    EXPECT_TRUE(review_summary(index).is_object());
  }
}

TEST(DoctorLookupTest, ReviewSummaryNamesPatientAndEncounter) {
  Json bundle = load_json(testing::charts_dir() /
                          "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  fhir::BundleIndex index(bundle);
  Json summary = review_summary(index);
  EXPECT_EQ(summary["patient"], "Lemuel Hodkiewicz");
  EXPECT_EQ(summary["encounter"], "Encounter Inpatient");
  EXPECT_EQ(summary["encounter_class"], "IMP");
}

TEST(ReviewOptionsTest, ParsesAndValidates) {
  auto defaults = ReviewOptions::from_json(Json::object());
  EXPECT_EQ(defaults.deadline, std::chrono::hours(48));
  EXPECT_EQ(defaults.fallback_queue, kDefaultFallbackQueue);
  auto o = ReviewOptions::from_json(
      Json{{"deadline", "2h"}, {"escalation_queue", "queue:chief"}, {"fallback_queue", "queue:x"}});
  EXPECT_EQ(o.deadline, std::chrono::hours(2));
  EXPECT_EQ(o.escalation_deadline, std::chrono::hours(2));
  EXPECT_EQ(o.escalation_queue, "queue:chief");
  EXPECT_THROW(ReviewOptions::from_json(Json{{"deadline", "soon"}}), std::invalid_argument);
  EXPECT_THROW(ReviewOptions::from_json(Json{{"deadline", "0s"}}), std::invalid_argument);
  EXPECT_THROW(ReviewOptions::from_json(Json{{"fallback_queue", ""}}), std::invalid_argument);
  EXPECT_THROW(ReviewOptions::from_json(Json{{"fallback_queue", 3}}), std::invalid_argument);
  DoctorReviewHandler handler;
  EXPECT_NO_THROW(handler.validate(Json{{"deadline", "48h"}}));
  EXPECT_THROW(handler.validate(Json{{"deadline", "48 hours"}}), std::invalid_argument);
}

}  // namespace
}  // namespace chartflow::handlers::doctor_review
