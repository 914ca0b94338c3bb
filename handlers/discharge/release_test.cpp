#include "handlers/discharge/release.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include "handlers/discharge/bill_channels.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers::discharge {
namespace {

using testing::bundle_of;
using testing::load_json;

TEST(ReleaseTest, ReleasedEncountersMatchTheDischargeDispositions) {
  std::size_t released_files = 0;
  std::set<std::string> released_encounter_ids;
  for (const auto& file : testing::chart_files()) {
    SCOPED_TRACE(file.filename().string());
    Json bundle = load_json(file);
    fhir::BundleIndex index(bundle);
    std::size_t expected = 0;
    for (const auto& e : bundle["entry"]) {
      const Json& r = e["resource"];
      if (r["resourceType"] == "Encounter" && r.contains("hospitalization") &&
          r["hospitalization"].contains("dischargeDisposition")) {
        ++expected;
        released_encounter_ids.insert(r["id"].get<std::string>());
      }
    }
    auto released = released_encounters(index);
    EXPECT_EQ(released.size(), expected);
    EXPECT_EQ(is_released(index), expected > 0);
    released_files += expected > 0 ? 1 : 0;
  }
  EXPECT_EQ(released_files, 12U);
  EXPECT_EQ(released_encounter_ids.size(), 10U);  // README: 10 unique encounters
}

TEST(ReleaseTest, OfficialEncounterExamples) {
  auto encounters = testing::hl7_resources({"Encounter-f001", "Encounter-f002", "Encounter-f003",
                                            "Encounter-f203", "Encounter-emerg",
                                            "Encounter-example", "Encounter-home"});
  EXPECT_TRUE(is_released_encounter(encounters[0]));
  EXPECT_TRUE(is_released_encounter(encounters[1]));
  EXPECT_TRUE(is_released_encounter(encounters[2]));
  EXPECT_FALSE(is_released_encounter(encounters[3]));  // finished, no disposition
  EXPECT_FALSE(is_released_encounter(encounters[4]));  // in progress
  EXPECT_FALSE(is_released_encounter(encounters[5]));
  EXPECT_FALSE(is_released_encounter(encounters[6]));
  Json in_progress = encounters[0];
  in_progress["status"] = "in-progress";
  EXPECT_FALSE(is_released_encounter(in_progress));
  Json empty_disposition = encounters[0];
  empty_disposition["hospitalization"]["dischargeDisposition"] = Json::object();
  EXPECT_FALSE(is_released_encounter(empty_disposition));
  EXPECT_FALSE(is_released_encounter(Json("x")));
}

BillInput sample_bill() {
  BillInput input;
  input.chart_id = "chart-1";
  input.patient_ref = "Patient/p1";
  input.patient_name = "Adán Portillo";
  input.issued_at = "2024-05-01T10:00:00Z";
  input.currency = "USD";
  input.payors = {"private"};
  input.lines = {
      {"Claim/c#item1", "183452005", "http://snomed.info/sct", "Encounter Inpatient", 1, "", 3750,
       "USD", "private"},
      {"Claim/c#item2", "428251008", "http://snomed.info/sct",
       "History of appendectomy with a description far longer than the column is wide", 1, "",
       1594733, "USD", "private"},
  };
  return input;
}

TEST(ReleaseTest, InvoiceTotalsTheLedger) {
  BillInput input = sample_bill();
  EXPECT_EQ(total_cents(input.lines), 1598483);
  Json invoice = build_invoice(input);
  EXPECT_EQ(invoice["resourceType"], "Invoice");
  EXPECT_EQ(invoice["status"], "issued");
  EXPECT_EQ(invoice["subject"]["reference"], "Patient/p1");
  EXPECT_EQ(invoice["lineItem"].size(), 2U);
  EXPECT_DOUBLE_EQ(invoice["totalGross"]["value"].get<double>(), 15984.83);
  EXPECT_EQ(invoice["totalGross"]["currency"], "USD");
}

TEST(ReleaseTest, BillTextIsReadable) {
  std::string text = render_bill_text(sample_bill());
  EXPECT_NE(text.find("Adán Portillo"), std::string::npos);
  EXPECT_NE(text.find("Encounter Inpatient"), std::string::npos);
  EXPECT_NE(text.find("15947.33 USD"), std::string::npos);
  EXPECT_NE(text.find("15984.83 USD"), std::string::npos);
  EXPECT_NE(text.find("..."), std::string::npos);  // long description cut
  BillInput empty = sample_bill();
  empty.lines.clear();
  EXPECT_NE(render_bill_text(empty).find("(no charges)"), std::string::npos);
}

TEST(BillChannelsTest, SettingsAndAtomicFolderWrite) {
  ::setenv("CHARTFLOW_TEST_BILL_DIR", "/tmp/x", 1);
  auto s = BillDeliverySettings::from_json(Json{
      {"channels",
       {{{"name", "folder"}, {"type", "folder"}, {"dir", "${CHARTFLOW_TEST_BILL_DIR}"}},
        {{"name", "hook"}, {"type", "webhook"}, {"url", "${CHARTFLOW_TEST_UNSET_VARIABLE}"}}}}});
  ASSERT_EQ(s.channels.size(), 1U);  // the webhook's url expanded to "": disabled
  EXPECT_EQ(s.channels[0].dir, "/tmp/x");
  EXPECT_THROW(BillDeliverySettings::from_json(Json{{"channels", {{{"type", "smtp"}}}}}),
               std::invalid_argument);
  EXPECT_THROW(BillDeliverySettings::from_json(
                   Json{{"channels", {{{"type", "webhook"}, {"url", "ftp://x"}}}}}),
               std::invalid_argument);
  EXPECT_THROW(BillDeliverySettings::from_json(Json{
                   {"channels",
                    {{{"type", "folder"}, {"dir", "/a"}}, {{"type", "folder"}, {"dir", "/b"}}}}}),
               std::invalid_argument);

  auto dir = std::filesystem::temp_directory_path() /
             ("chartflow-bill-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  EXPECT_EQ(write_bill_file(dir / "nested", "chart-1", "first"), "");
  EXPECT_EQ(write_bill_file(dir / "nested", "chart-1", "second"), "");
  EXPECT_EQ(testing::read_file(dir / "nested" / "chart-1-invoice.txt"), "second");
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir / "nested"))
    ++files;
  EXPECT_EQ(files, 1U);  // no temporary left behind
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace chartflow::handlers::discharge
