#include "handlers/chart_intake/chart_intake.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/util/hash.hpp"
#include "handlers/common/chart_event.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers {
namespace {

using testing::chart_files;
using testing::load_json;

TEST(ChartIntakeTest, AcceptsEveryRealChart) {
  const auto files = chart_files();
  ASSERT_EQ(files.size(), 35U);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const std::string raw = testing::read_file(file);
    EXPECT_LE(raw.size(), kDefaultMaxChartBytes);
    Json bundle = Json::parse(raw);
    EXPECT_EQ(validate_chart(bundle), std::nullopt);
    auto id = patient_chart_id(bundle);
    ASSERT_TRUE(id.has_value());
    EXPECT_TRUE(valid_chart_id(*id));
    // Chart id = Patient.id (which differs from the Synthea identifier in the file name).
    for (const auto& e : bundle["entry"]) {
      if (e["resource"]["resourceType"] == "Patient") {
        EXPECT_EQ(*id, e["resource"]["id"]);
        break;
      }
    }
  }
}

TEST(ChartIntakeTest, AcceptsTheOfficialTransactionWithRequestOnlyEntries) {
  Json bundle = load_json(testing::hl7_dir() / "Bundle-bundle-transaction.json");
  EXPECT_EQ(validate_chart(bundle), std::nullopt);
  // Its first Patient has no id; the chart id falls back to an identifier or is absent.
  auto id = patient_chart_id(bundle);
  if (id) {
    EXPECT_TRUE(valid_chart_id(*id));
  }
}

TEST(ChartIntakeTest, RejectsEachMalformedKindNamingTheProblem) {
  Json patient = {{"resourceType", "Patient"}, {"id", "p1"}};
  Json observation = {{"resourceType", "Observation"}, {"id", "o1"}};
  struct Case {
    Json body;
    std::string expected_fragment;
  };
  std::vector<Case> cases = {
      {Json::array(), "not a JSON object"},
      {Json("Bundle"), "not a JSON object"},
      {Json(nullptr), "not a JSON object"},
      {Json::object(), "resourceType is missing"},
      {Json{{"resourceType", "Patient"}, {"entry", {{{"resource", patient}}}}}, "\"Patient\""},
      {Json{{"resourceType", 5}}, "not \"Bundle\""},
      {Json{{"resourceType", "<script>"}}, "not \"Bundle\""},
      {Json{{"resourceType", "Bundle"}}, "no entries"},
      {Json{{"resourceType", "Bundle"}, {"entry", Json::array()}}, "no entries"},
      {Json{{"resourceType", "Bundle"}, {"entry", "x"}}, "no entries"},
      {Json{{"resourceType", "Bundle"}, {"entry", {Json::object()}}}, "entry[0] is empty"},
      {Json{{"resourceType", "Bundle"}, {"entry", {{{"resource", patient}}, nullptr}}},
       "entry[1] is empty"},
      {Json{{"resourceType", "Bundle"}, {"entry", {{{"fullUrl", "x"}}}}}, "neither"},
      {Json{{"resourceType", "Bundle"}, {"entry", {{{"resource", Json::object()}}}}},
       "entry[0].resource"},
      {Json{{"resourceType", "Bundle"}, {"entry", {{{"resource", {{"id", "x"}}}}}}},
       "no resourceType"},
      {Json{{"resourceType", "Bundle"}, {"entry", {{{"resource", observation}}}}}, "no Patient"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body.dump());
    auto error = validate_chart(c.body);
    ASSERT_TRUE(error.has_value());
    EXPECT_NE(error->find(c.expected_fragment), std::string::npos) << *error;
    EXPECT_EQ(error->find("<script>"), std::string::npos);
  }
}

TEST(ChartIntakeTest, ValidChartIds) {
  for (const char* ok : {"a", "563460b4-b997-4772-a548-a9f877eb4c12", "A.b_c-1", "x1.json"}) {
    EXPECT_TRUE(valid_chart_id(ok)) << ok;
  }
  for (const char* bad : {"", ".", "..", "a..b", "-a", ".hidden", "_a", "a/b", "a\\b", "../etc",
                          "a b", "a\nb", "a%2e", "caf\xc3\xa9", "a?b", "a#b"}) {
    EXPECT_FALSE(valid_chart_id(bad)) << bad;
  }
  EXPECT_TRUE(valid_chart_id(std::string(128, 'a')));
  EXPECT_FALSE(valid_chart_id(std::string(129, 'a')));
  EXPECT_FALSE(valid_chart_id(std::string("a\0b", 3)));
}

TEST(ChartIntakeTest, ChartIdFallsBackToIdentifiers) {
  Json bundle = {{"resourceType", "Bundle"},
                 {"entry",
                  {{{"resource",
                     {{"resourceType", "Patient"},
                      {"id", "../../etc/passwd"},
                      {"identifier",
                       {{{"system", "x"}, {"value", "bad value"}},
                        {{"type", {{"coding", {{{"code", "MR"}}}}}}, {"value", "MRN-42"}}}}}}}}}};
  EXPECT_EQ(patient_chart_id(bundle), "MRN-42");
  bundle["entry"][0]["resource"].erase("identifier");
  EXPECT_EQ(patient_chart_id(bundle), std::nullopt);
}

TEST(ChartIntakeTest, EventBodyFlagsMatchTheCharts) {
  // Released = an Encounter with hospitalization.dischargeDisposition (README: 10 encounters).
  const std::set<std::string> released = {
      "enc-alberto-atencio-20070604-emer-emergency-room-admission-4ce65733.json",
      "enc-brady-kuhlman-20010718-imp-encounter-inpatient-224a9d89.json",
      "enc-filiberto-ryan-20171228-imp-encounter-inpatient-6bd1936c.json",
      "enc-garrett-thompson-19720330-emer-emergency-room-admission-f3ca8bee.json",
      "enc-jordan-cruickshank-20170624-emer-emergency-room-admission-b3fa30ba.json",
      "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json",
      "enc-oralia-stark-20141009-amb-encounter-for-check-up-procedure-210dd382.json",
      "enc-trent-jaskolski-19930818-imp-encounter-inpatient-12c7cdb8.json",
      "full-alberto-atencio-fc712d1f.json",
      "full-fletcher-hyatt-fe0562b5.json",
      "full-garrett-thompson-5a72e290.json",
      "full-lemuel-hodkiewicz-ece76cc5.json",
  };
  for (const auto& file : chart_files()) {
    SCOPED_TRACE(file.filename().string());
    Json bundle = load_json(file);
    Json body = chart_event_body(bundle, "c1", 3);
    EXPECT_EQ(body["chart_id"], "c1");
    EXPECT_EQ(body["revision"], 3);
    EXPECT_EQ(body["has_billable"], true);  // every chart has claims
    EXPECT_EQ(body["released"], released.count(file.filename().string()) == 1);
    auto parsed = parse_chart_event(body);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->revision, 3);
  }
  Json nothing = {{"resourceType", "Bundle"},
                  {"entry", {{{"resource", {{"resourceType", "Patient"}, {"id", "p"}}}}}}};
  EXPECT_EQ(chart_event_body(nothing, "p", 1)["has_billable"], false);
}

TEST(ChartIntakeTest, ParseChartEventRejectsBadBodies) {
  EXPECT_FALSE(parse_chart_event(Json::object()).has_value());
  EXPECT_FALSE(parse_chart_event(Json{{"chart_id", "a/b"}, {"revision", 1}}).has_value());
  EXPECT_FALSE(parse_chart_event(Json{{"chart_id", "a"}, {"revision", 0}}).has_value());
  EXPECT_FALSE(parse_chart_event(Json{{"chart_id", "a"}, {"revision", 1.5}}).has_value());
  EXPECT_FALSE(parse_chart_event(Json("x")).has_value());
  auto ok = parse_chart_event(Json{{"chart_id", "a"}, {"revision", "7"}, {"released", true}});
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->revision, 7);
  EXPECT_EQ(ok->chart_id, "a");
}

TEST(HashTest, Sha256AndStableUuid) {
  EXPECT_EQ(util::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(util::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string u = util::stable_uuid("x");
  EXPECT_EQ(u.size(), 36U);
  EXPECT_EQ(u[14], '5');
  EXPECT_EQ(u, util::stable_uuid("x"));
  EXPECT_NE(u, util::stable_uuid("y"));
}

}  // namespace
}  // namespace chartflow::handlers
