// What a chart bills, read from the Bundle alone (pure; any thread): one item per completed
// MedicationAdministration and one per item of each billable Claim, with its amount.
//
// Claim item amounts, first that applies: item.net; unitPrice x quantity (x factor); an equal
// share of what Claim.total leaves after the priced items (Synthea puts the encounter fee only
// in the total); the price list by code x quantity; the price list default x quantity.
// A MedicationAdministration is billed once at the price list price of its medication code
// (its dose is recorded as quantity, not multiplied: "500 mg" is not 500 units).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers::billing {

inline constexpr const char* kDefaultCurrency = "USD";
inline constexpr std::int64_t kDefaultPriceCents = 5000;

// Prices from workflows/settings/price-list.yaml:
//   currency: USD
//   default: 50.00
//   prices: { "<code>": 12.50, "<system>|<code>": { price: 255.00, description: "..." } }
struct PriceList {
  std::string currency = kDefaultCurrency;
  std::int64_t default_cents = kDefaultPriceCents;
  std::unordered_map<std::string, std::int64_t> prices;  // "code" or "system|code" -> cents
  std::unordered_map<std::string, std::string> descriptions;

  std::optional<std::int64_t> price_for(std::string_view system, std::string_view code) const;
  std::string description_for(std::string_view system, std::string_view code) const;
  // Throws std::invalid_argument naming the offending key.
  static PriceList from_json(const Json& settings);
};

struct BillableItem {
  std::string source_ref;  // "Claim/<id>#item<seq>" or "MedicationAdministration/<id>"
  std::string kind;        // "claim_item" or "medication_administration"
  std::string code;
  std::string system;
  std::string description;
  double quantity = 1;
  std::string unit;
  std::int64_t amount_cents = 0;
  std::string currency;
  std::string amount_source;  // net | unit_price | claim_total | price_list | price_list_default
  std::string payor;          // the claim's insurer, else the chart's primary one; may be ""
};

// Claims of use "claim" (or none) that are not draft, cancelled or entered-in-error.
bool is_billable_claim(const Json& claim);
bool is_completed_administration(const Json& administration);
// True when extract_billable_items would return anything (cheap: no pricing).
bool has_billable(const fhir::BundleIndex& index);
std::vector<BillableItem> extract_billable_items(const fhir::BundleIndex& index,
                                                 const PriceList& prices);

}  // namespace chartflow::handlers::billing
