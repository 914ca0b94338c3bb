#include "handlers/billing/billable_items.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "handlers/common/config_file.hpp"
#include "handlers/fhir/fhir_json.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers::billing {
namespace {

using testing::bundle_of;
using testing::load_json;

PriceList repo_prices() {
  return PriceList::from_json(
      load_config_file(testing::workflows_dir() / "settings/price-list.yaml"));
}

TEST(BillableItemsTest, OneItemPerClaimItemAndCompletedAdministrationOnEveryChart) {
  const PriceList prices = repo_prices();
  std::size_t total_items = 0;
  for (const auto& file : testing::chart_files()) {
    SCOPED_TRACE(file.filename().string());
    Json bundle = load_json(file);
    // Expected, counted straight from the JSON.
    std::size_t expected = 0;
    std::map<std::string, std::int64_t> claim_totals;
    for (const auto& e : bundle["entry"]) {
      const Json& r = e["resource"];
      if (r["resourceType"] == "Claim") {
        expected += r["item"].size();
        claim_totals["Claim/" + r["id"].get<std::string>()] =
            fhir::to_cents(r["total"]["value"].get<double>());
      }
      if (r["resourceType"] == "MedicationAdministration" && r["status"] == "completed") {
        ++expected;
      }
    }
    fhir::BundleIndex index(bundle);
    auto items = extract_billable_items(index, prices);
    EXPECT_EQ(items.size(), expected);
    EXPECT_TRUE(has_billable(index));
    total_items += items.size();

    std::set<std::string> refs;
    std::map<std::string, std::int64_t> per_claim;
    for (const auto& item : items) {
      EXPECT_TRUE(refs.insert(item.source_ref).second) << "duplicate " << item.source_ref;
      EXPECT_EQ(item.kind, "claim_item");
      EXPECT_FALSE(item.code.empty());
      EXPECT_FALSE(item.description.empty());
      EXPECT_GE(item.amount_cents, 0);
      EXPECT_EQ(item.currency, "USD");
      EXPECT_FALSE(item.payor.empty());
      EXPECT_TRUE(item.amount_source == "net" || item.amount_source == "claim_total")
          << item.amount_source;
      per_claim[item.source_ref.substr(0, item.source_ref.find('#'))] += item.amount_cents;
    }
    // Synthea claim totals are the item nets plus the encounter fee: shared out, they add up.
    for (const auto& [claim, total] : claim_totals) EXPECT_EQ(per_claim[claim], total) << claim;
  }
  EXPECT_EQ(total_items, 664U);  // sum of Claim.item over the 35 files
}

TEST(BillableItemsTest, SplitsTheEncounterFeeOverUnpricedItems) {
  Json bundle = load_json(testing::charts_dir() /
                          "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  fhir::BundleIndex index(bundle);
  auto items = extract_billable_items(index, repo_prices());
  ASSERT_EQ(items.size(), 2U);
  EXPECT_EQ(items[0].source_ref, "Claim/71e7da7e-b8c7-4c96-9b80-d3cbc830b142#item1");
  EXPECT_EQ(items[0].code, "183452005");
  EXPECT_EQ(items[0].description, "Encounter Inpatient");
  EXPECT_EQ(items[0].amount_cents, 3750);  // total 75 over two unpriced items
  EXPECT_EQ(items[1].amount_cents, 3750);
  EXPECT_EQ(items[0].payor, "private");
}

TEST(BillableItemsTest, BillsTheCompletedOfficialMedicationAdministrations) {
  std::vector<std::string> names;
  for (int i = 1; i <= 13; ++i)
    names.push_back(fmt::format("MedicationAdministration-medadmin03{:02}", i));
  names.push_back("MedicationAdministration-medadminexample03");
  auto resources = testing::hl7_resources(names);
  resources.push_back({{"resourceType", "Patient"}, {"id", "pat1"}});
  Json bundle = bundle_of(resources);
  fhir::BundleIndex index(bundle);
  EXPECT_TRUE(has_billable(index));
  const PriceList prices = repo_prices();
  auto items = extract_billable_items(index, prices);
  ASSERT_EQ(items.size(), 11U);
  std::map<std::string, BillableItem> by_ref;
  for (const auto& item : items) {
    EXPECT_EQ(item.kind, "medication_administration");
    EXPECT_FALSE(item.code.empty());
    by_ref[item.source_ref] = item;
  }
  EXPECT_EQ(by_ref.count("MedicationAdministration/medadmin0301"), 0U);  // in-progress
  EXPECT_EQ(by_ref.count("MedicationAdministration/medadmin0303"), 0U);  // entered-in-error
  const auto& lantus = by_ref.at("MedicationAdministration/medadmin0308");
  EXPECT_EQ(lantus.code, "285018");
  EXPECT_EQ(lantus.quantity, 20);
  EXPECT_EQ(lantus.unit, "U");
  EXPECT_EQ(lantus.amount_cents, 3840);
  EXPECT_EQ(lantus.amount_source, "price_list");
  // medicationReference "#med0317": a contained Medication coded only by its ingredients.
  const auto& kcl = by_ref.at("MedicationAdministration/medadmin0302");
  EXPECT_EQ(kcl.code, "204520");
  EXPECT_EQ(kcl.amount_cents, 625);
  EXPECT_EQ(kcl.quantity, 20);
  // Unknown codes cost the default price.
  std::size_t defaults = 0;
  for (const auto& item : items) defaults += item.amount_source == "price_list_default" ? 1 : 0;
  EXPECT_GT(defaults, 0U);
}

TEST(BillableItemsTest, AmountRulesInOrder) {
  PriceList prices;
  prices.default_cents = 1000;
  prices.prices["known"] = 250;
  Json claim = {{"resourceType", "Claim"},
                {"id", "c"},
                {"status", "active"},
                {"use", "claim"},
                {"insurance", {{{"focal", true}, {"coverage", {{"display", "medicare"}}}}}},
                {"item",
                 {{{"sequence", 1},
                   {"productOrService", {{"coding", {{{"code", "a"}}}}}},
                   {"net", {{"value", 10.5}, {"currency", "EUR"}}}},
                  {{"sequence", 2},
                   {"productOrService", {{"coding", {{{"code", "b"}}}}}},
                   {"unitPrice", {{"value", 2}}},
                   {"quantity", {{"value", 3}}},
                   {"factor", 0.5}},
                  {{"sequence", 3},
                   {"productOrService", {{"coding", {{{"code", "known"}}}}}},
                   {"quantity", {{"value", 2}}}},
                  {{"sequence", 4}, {"productOrService", {{"text", "no code"}}}},
                  {{"sequence", 4}},
                  "not an item"}}};
  Json bundle = bundle_of({claim});
  fhir::BundleIndex index(bundle);
  auto items = extract_billable_items(index, prices);
  ASSERT_EQ(items.size(), 5U);
  EXPECT_EQ(items[0].amount_cents, 1050);
  EXPECT_EQ(items[0].currency, "EUR");
  EXPECT_EQ(items[0].amount_source, "net");
  EXPECT_EQ(items[1].amount_cents, 300);
  EXPECT_EQ(items[1].amount_source, "unit_price");
  EXPECT_EQ(items[2].amount_cents, 500);  // no total: price list x quantity
  EXPECT_EQ(items[2].amount_source, "price_list");
  EXPECT_EQ(items[3].amount_cents, 1000);
  EXPECT_EQ(items[3].amount_source, "price_list_default");
  EXPECT_EQ(items[3].code, "unknown");
  EXPECT_EQ(items[3].description, "no code");
  EXPECT_EQ(items[4].source_ref, "Claim/c#entry5");  // duplicate sequence
  for (const auto& i : items) EXPECT_EQ(i.payor, "medicare");

  // With a total, the unpriced items share what the priced ones leave, to the cent.
  claim["total"] = {{"value", 23.51}, {"currency", "USD"}};
  Json with_total = bundle_of({claim});
  fhir::BundleIndex total_index(with_total);
  items = extract_billable_items(total_index, prices);
  std::int64_t sum = 0;
  for (const auto& i : items) sum += i.amount_cents;
  EXPECT_EQ(sum, 2351);
  EXPECT_EQ(items[2].amount_source, "claim_total");
  EXPECT_EQ(items[2].amount_cents, 333);
  EXPECT_EQ(items[4].amount_cents, 335);
}

TEST(BillableItemsTest, SkipsClaimsThatAreNotBillable) {
  for (const Json& claim :
       {Json{{"resourceType", "Claim"}, {"status", "cancelled"}, {"item", {{{"sequence", 1}}}}},
        Json{{"resourceType", "Claim"}, {"status", "draft"}, {"item", {{{"sequence", 1}}}}},
        Json{{"resourceType", "Claim"}, {"use", "preauthorization"}, {"item", {{{"sequence", 1}}}}},
        Json{{"resourceType", "Claim"}, {"item", "x"}}}) {
    Json bundle = bundle_of({claim});
    fhir::BundleIndex index(bundle);
    EXPECT_FALSE(has_billable(index));
    EXPECT_TRUE(extract_billable_items(index, PriceList{}).empty());
  }
}

TEST(PriceListTest, LoadsTheRepoFileAndRejectsBadValues) {
  PriceList prices = repo_prices();
  EXPECT_EQ(prices.currency, "USD");
  EXPECT_EQ(prices.default_cents, 5000);
  EXPECT_EQ(prices.price_for("", "285018"), 3840);
  EXPECT_EQ(prices.price_for("http://x", "285018"), 3840);
  EXPECT_FALSE(prices.price_for("", "nope").has_value());
  EXPECT_EQ(PriceList::from_json(nullptr).currency, "USD");
  EXPECT_THROW(PriceList::from_json(Json{{"currency", "dollars"}}), std::invalid_argument);
  EXPECT_THROW(PriceList::from_json(Json{{"default", -1}}), std::invalid_argument);
  EXPECT_THROW(PriceList::from_json(Json{{"prices", {{"x", "cheap"}}}}), std::invalid_argument);
  EXPECT_THROW(PriceList::from_json(Json::array()), std::invalid_argument);
  PriceList scoped = PriceList::from_json(Json{{"prices", {{"s|c", 1}, {"c", 2}}}});
  EXPECT_EQ(scoped.price_for("s", "c"), 100);
  EXPECT_EQ(scoped.price_for("t", "c"), 200);
}

}  // namespace
}  // namespace chartflow::handlers::billing
