#include "handlers/insurance/insurer_lookup.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::insurance {
namespace {

using fhir::array_member;
using fhir::member;
using fhir::object_member;
using fhir::string_member;

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return std::isspace(c) == 0; };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

bool inactive(const Json& resource) {
  std::string status = string_member(resource, "status");
  return status == "cancelled" || status == "entered-in-error";
}

std::string reference_type(const std::string& reference) {
  auto q = reference.find('?');
  std::string head = reference.substr(0, q);
  auto slash = head.rfind('/');
  if (q != std::string::npos) return head.substr(slash == std::string::npos ? 0 : slash + 1);
  if (slash == std::string::npos) return {};
  std::string type = head.substr(0, slash);
  auto prev = type.rfind('/');
  return prev == std::string::npos ? type : type.substr(prev + 1);
}

// The payor named by a Reference to the paying party.
std::string party_name(const fhir::BundleIndex& index, const Json& party, const Json& holder) {
  std::string display = trim(string_member(party, "display"));
  if (!display.empty()) return display;
  std::string reference = string_member(party, "reference");
  const Json* target = index.resolve_reference(party, &holder);
  std::string type = target != nullptr ? fhir::resource_type(*target) : reference_type(reference);
  if (type == "Patient" || type == "RelatedPerson") return kSelfPayPayor;
  if (target != nullptr) {
    std::string name = trim(string_member(*target, "name"));
    if (!name.empty()) return name;
  }
  if (!reference.empty()) return trim(reference);
  return trim(string_member(object_member(party, "identifier"), "value"));
}

// Sort key for "most recent first": created, else billablePeriod.start (ISO strings compare).
std::string recency(const Json& claim) {
  std::string created = string_member(claim, "created");
  if (!created.empty()) return created;
  return string_member(object_member(claim, "billablePeriod"), "start");
}

std::vector<const Json*> most_recent_first(const std::vector<const Json*>& resources) {
  std::vector<const Json*> out;
  for (const Json* r : resources) {
    if (!inactive(*r)) out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Json* a, const Json* b) { return recency(*a) > recency(*b); });
  return out;
}

}  // namespace

std::string coverage_payor(const fhir::BundleIndex& index, const Json& coverage) {
  for (const auto& party : array_member(coverage, "payor")) {
    std::string name = party_name(index, party, coverage);
    if (!name.empty()) return name;
  }
  return trim(fhir::concept_text(object_member(coverage, "type")));
}

std::string claim_payor(const fhir::BundleIndex& index, const Json& claim) {
  const Json& insurance = array_member(claim, "insurance");
  const Json* chosen = nullptr;
  for (const auto& i : insurance) {
    if (i.is_object() && fhir::bool_member(i, "focal", false)) {
      chosen = &i;
      break;
    }
  }
  std::vector<const Json*> order;
  if (chosen != nullptr) order.push_back(chosen);
  for (const auto& i : insurance) {
    if (&i != chosen && i.is_object()) order.push_back(&i);
  }
  for (const Json* i : order) {
    const Json& coverage_ref = object_member(*i, "coverage");
    if (const Json* coverage = index.resolve_reference(coverage_ref, &claim)) {
      if (fhir::resource_type(*coverage) == "Coverage") {
        std::string name = coverage_payor(index, *coverage);
        if (!name.empty()) return name;
      }
    }
    std::string display = trim(string_member(coverage_ref, "display"));
    if (!display.empty()) return display;
  }
  // An EOB names its insurer directly as well.
  const Json& insurer = object_member(claim, "insurer");
  if (!insurer.empty()) return party_name(index, insurer, claim);
  return {};
}

std::vector<PayorInfo> find_insurers(const fhir::BundleIndex& index) {
  std::vector<PayorInfo> out;
  std::set<std::string> seen;
  auto add = [&](std::string payor, const char* source, const Json& resource) {
    if (payor.empty() || !seen.insert(payor).second) return;
    out.push_back(PayorInfo{std::move(payor), source, index.ref_of(resource)});
  };

  std::vector<const Json*> coverages;
  for (const Json* c : index.of_type("Coverage")) {
    if (!inactive(*c)) coverages.push_back(c);
  }
  std::stable_sort(coverages.begin(), coverages.end(), [](const Json* a, const Json* b) {
    auto ao = fhir::number_member(*a, "order").value_or(1e9);
    auto bo = fhir::number_member(*b, "order").value_or(1e9);
    return ao < bo;
  });
  for (const Json* c : coverages) add(coverage_payor(index, *c), "Coverage", *c);
  if (!out.empty()) return out;

  for (const Json* claim : most_recent_first(index.of_type("Claim"))) {
    add(claim_payor(index, *claim), "Claim", *claim);
  }
  if (!out.empty()) return out;

  for (const Json* eob : most_recent_first(index.of_type("ExplanationOfBenefit"))) {
    add(claim_payor(index, *eob), "ExplanationOfBenefit", *eob);
  }
  return out;
}

std::optional<PayorInfo> primary_insurer(const fhir::BundleIndex& index) {
  auto all = find_insurers(index);
  if (all.empty()) return std::nullopt;
  return std::move(all.front());
}

}  // namespace chartflow::handlers::insurance
