#include "handlers/billing/billable_items.hpp"

#include <fmt/format.h>

#include <cmath>
#include <set>
#include <stdexcept>

#include "handlers/fhir/fhir_json.hpp"
#include "handlers/insurance/insurer_lookup.hpp"

namespace chartflow::handlers::billing {

using insurance::claim_payor;
using insurance::primary_insurer;
namespace {

using fhir::array_member;
using fhir::member;
using fhir::number_member;
using fhir::object_member;
using fhir::string_member;

std::optional<std::int64_t> price_cents(const Json& value) {
  if (value.is_number()) {
    double v = value.get<double>();
    if (std::isfinite(v) && v >= 0) return fhir::to_cents(v);
  }
  return std::nullopt;
}

bool valid_currency(const std::string& c) {
  if (c.size() != 3) return false;
  for (char ch : c) {
    if (ch < 'A' || ch > 'Z') return false;
  }
  return true;
}

std::string currency_of(const Json& money, const std::string& fallback) {
  std::string c = string_member(money, "currency");
  return valid_currency(c) ? c : fallback;
}

// Medication code of an administration: medicationCodeableConcept, else the referenced
// Medication's code, else its first ingredient's code.
Json medication_concept(const fhir::BundleIndex& index, const Json& administration) {
  if (const Json* cc = member(administration, "medicationCodeableConcept")) return *cc;
  const Json* medication = index.resolve_reference(
      object_member(administration, "medicationReference"), &administration);
  if (medication == nullptr) {
    Json out = Json::object();
    std::string display =
        string_member(object_member(administration, "medicationReference"), "display");
    if (!display.empty()) out["text"] = display;
    return out;
  }
  if (fhir::has_value(object_member(*medication, "code")))
    return object_member(*medication, "code");
  for (const auto& ingredient : array_member(*medication, "ingredient")) {
    const Json& item = object_member(ingredient, "itemCodeableConcept");
    if (fhir::has_value(item)) return item;
  }
  return Json::object();
}

std::string item_ref(const std::string& claim_ref, const Json& item, std::size_t index,
                     std::set<std::string>& used) {
  std::string ref;
  auto seq = number_member(item, "sequence");
  if (seq && *seq >= 0 && *seq == std::floor(*seq)) {
    ref = fmt::format("{}#item{}", claim_ref, static_cast<std::int64_t>(*seq));
  }
  if (ref.empty() || used.count(ref) != 0) ref = fmt::format("{}#entry{}", claim_ref, index + 1);
  used.insert(ref);
  return ref;
}

void add_claim_items(const fhir::BundleIndex& index, const Json& claim, const PriceList& prices,
                     const std::string& chart_payor, std::vector<BillableItem>& out) {
  const std::string claim_ref = index.ref_of(claim);
  std::string payor = claim_payor(index, claim);
  if (payor.empty()) payor = chart_payor;
  const Json& total = object_member(claim, "total");
  const std::string claim_currency = currency_of(total, prices.currency);

  std::vector<BillableItem> items;
  std::vector<bool> priced;
  std::set<std::string> used_refs;
  std::int64_t priced_sum = 0;
  std::size_t position = 0;
  for (const auto& item : array_member(claim, "item")) {
    if (!item.is_object()) {
      ++position;
      continue;
    }
    BillableItem b;
    b.kind = "claim_item";
    b.source_ref = item_ref(claim_ref, item, position++, used_refs);
    const Json& product = object_member(item, "productOrService");
    if (auto coding = fhir::first_coding(product)) {
      b.code = coding->code;
      b.system = coding->system;
    }
    b.description = fhir::concept_text(product);
    const Json& quantity = object_member(item, "quantity");
    if (auto q = number_member(quantity, "value"); q && *q > 0) b.quantity = *q;
    b.unit = string_member(quantity, "unit");
    b.payor = payor;
    b.currency = claim_currency;
    bool has_price = false;
    if (auto net = number_member(object_member(item, "net"), "value")) {
      b.amount_cents = fhir::to_cents(*net);
      b.currency = currency_of(object_member(item, "net"), claim_currency);
      b.amount_source = "net";
      has_price = true;
    } else if (auto unit = number_member(object_member(item, "unitPrice"), "value")) {
      double factor = number_member(item, "factor").value_or(1.0);
      b.amount_cents = fhir::to_cents(*unit * b.quantity * factor);
      b.currency = currency_of(object_member(item, "unitPrice"), claim_currency);
      b.amount_source = "unit_price";
      has_price = true;
    }
    if (has_price) priced_sum += b.amount_cents;
    priced.push_back(has_price);
    items.push_back(std::move(b));
  }

  // Share what the total leaves among the unpriced items, in whole cents; the last one takes
  // the rounding remainder so the items add up to the total exactly.
  std::size_t unpriced = 0;
  for (bool p : priced) unpriced += p ? 0 : 1;
  std::int64_t remaining = 0;
  if (auto t = number_member(total, "value")) remaining = fhir::to_cents(*t) - priced_sum;
  const bool share_total = unpriced > 0 && remaining > 0;
  std::size_t seen_unpriced = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (priced[i]) continue;
    BillableItem& b = items[i];
    ++seen_unpriced;
    if (share_total) {
      std::int64_t share = remaining / static_cast<std::int64_t>(unpriced);
      if (seen_unpriced == unpriced)
        share = remaining - share * static_cast<std::int64_t>(unpriced - 1);
      b.amount_cents = share;
      b.amount_source = "claim_total";
    } else if (auto p = prices.price_for(b.system, b.code)) {
      b.amount_cents = fhir::to_cents(static_cast<double>(*p) / 100.0 * b.quantity);
      b.currency = prices.currency;
      b.amount_source = "price_list";
    } else {
      b.amount_cents =
          fhir::to_cents(static_cast<double>(prices.default_cents) / 100.0 * b.quantity);
      b.currency = prices.currency;
      b.amount_source = "price_list_default";
    }
  }
  for (auto& b : items) {
    if (b.code.empty()) b.code = "unknown";
    out.push_back(std::move(b));
  }
}

}  // namespace

std::optional<std::int64_t> PriceList::price_for(std::string_view system,
                                                 std::string_view code) const {
  if (code.empty()) return std::nullopt;
  if (!system.empty()) {
    auto it = prices.find(fmt::format("{}|{}", system, code));
    if (it != prices.end()) return it->second;
  }
  auto it = prices.find(std::string(code));
  if (it != prices.end()) return it->second;
  return std::nullopt;
}

std::string PriceList::description_for(std::string_view system, std::string_view code) const {
  if (!system.empty()) {
    auto it = descriptions.find(fmt::format("{}|{}", system, code));
    if (it != descriptions.end()) return it->second;
  }
  auto it = descriptions.find(std::string(code));
  return it == descriptions.end() ? std::string() : it->second;
}

PriceList PriceList::from_json(const Json& settings) {
  PriceList list;
  if (settings.is_null()) return list;
  if (!settings.is_object()) throw std::invalid_argument("price list must be a mapping");
  if (const Json* c = member(settings, "currency")) {
    if (!c->is_string() || !valid_currency(c->get<std::string>())) {
      throw std::invalid_argument("price list 'currency' must be a 3-letter ISO code like USD");
    }
    list.currency = c->get<std::string>();
  }
  if (const Json* d = member(settings, "default")) {
    auto cents = price_cents(*d);
    if (!cents) throw std::invalid_argument("price list 'default' must be a non-negative number");
    list.default_cents = *cents;
  }
  if (const Json* p = member(settings, "prices")) {
    if (!p->is_object()) throw std::invalid_argument("price list 'prices' must be a mapping");
    for (const auto& [code, value] : p->items()) {
      std::optional<std::int64_t> cents;
      if (value.is_object()) {
        if (const Json* price = member(value, "price")) cents = price_cents(*price);
        std::string description = string_member(value, "description");
        if (!description.empty()) list.descriptions[code] = description;
      } else {
        cents = price_cents(value);
      }
      if (!cents) {
        throw std::invalid_argument(
            fmt::format("price list entry '{}' needs a non-negative price", code));
      }
      list.prices[code] = *cents;
    }
  }
  return list;
}

bool is_billable_claim(const Json& claim) {
  std::string status = string_member(claim, "status");
  if (status == "cancelled" || status == "entered-in-error" || status == "draft") return false;
  std::string use = string_member(claim, "use");
  return use.empty() || use == "claim";
}

bool is_completed_administration(const Json& administration) {
  return string_member(administration, "status") == "completed";
}

bool has_billable(const fhir::BundleIndex& index) {
  for (const Json* ma : index.of_type("MedicationAdministration")) {
    if (is_completed_administration(*ma)) return true;
  }
  for (const Json* claim : index.of_type("Claim")) {
    if (!is_billable_claim(*claim)) continue;
    for (const auto& item : array_member(*claim, "item")) {
      if (item.is_object()) return true;
    }
  }
  return false;
}

std::vector<BillableItem> extract_billable_items(const fhir::BundleIndex& index,
                                                 const PriceList& prices) {
  std::vector<BillableItem> out;
  std::string chart_payor;
  if (auto primary = primary_insurer(index)) chart_payor = primary->payor;

  for (const Json* ma : index.of_type("MedicationAdministration")) {
    if (!is_completed_administration(*ma)) continue;
    BillableItem b;
    b.kind = "medication_administration";
    b.source_ref = index.ref_of(*ma);
    Json concept_json = medication_concept(index, *ma);
    if (auto coding = fhir::first_coding(concept_json)) {
      b.code = coding->code;
      b.system = coding->system;
    }
    b.description = fhir::concept_text(concept_json);
    if (b.description.empty()) b.description = prices.description_for(b.system, b.code);
    const Json& dose = object_member(object_member(*ma, "dosage"), "dose");
    if (auto q = number_member(dose, "value"); q && *q > 0) {
      b.quantity = *q;
      b.unit = string_member(dose, "unit");
      if (b.unit.empty()) b.unit = string_member(dose, "code");
    }
    b.currency = prices.currency;
    if (auto p = prices.price_for(b.system, b.code)) {
      b.amount_cents = *p;
      b.amount_source = "price_list";
    } else {
      b.amount_cents = prices.default_cents;
      b.amount_source = "price_list_default";
    }
    if (b.code.empty()) b.code = "unknown";
    b.payor = chart_payor;
    out.push_back(std::move(b));
  }

  for (const Json* claim : index.of_type("Claim")) {
    if (is_billable_claim(*claim)) add_claim_items(index, *claim, prices, chart_payor, out);
  }
  return out;
}

}  // namespace chartflow::handlers::billing
