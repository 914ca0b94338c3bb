// Who insures the patient of a chart, read from the Bundle alone (pure; any thread).
// Order of evidence, as the issue asks: standalone Coverage resources (payor), else the claims'
// insurance[].coverage (a Coverage reference or its display, "medicare" in Synthea), else the
// ExplanationOfBenefit's contained Coverage (payor, else type). Payor names are used as given
// (trimmed): they key the per-payor endpoints in workflows/settings/insurers.yaml.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers::insurance {

inline constexpr const char* kSelfPayPayor = "self-pay";

struct PayorInfo {
  std::string payor;
  std::string source;  // "Coverage", "Claim" or "ExplanationOfBenefit"
  std::string ref;     // the resource the payor was read from ("Claim/<id>")
};

// The payor named by a Coverage: payor[0].display, else the referenced Organization's name,
// else the reference text or identifier value; "self-pay" when the payor is the Patient or a
// RelatedPerson; else the Coverage.type text. "" when the Coverage names none.
std::string coverage_payor(const fhir::BundleIndex& index, const Json& coverage);
// The payor of one Claim or ExplanationOfBenefit: its focal (else first) insurance's coverage.
std::string claim_payor(const fhir::BundleIndex& index, const Json& claim);
// Every distinct payor of the chart, the primary one first (the active Coverage with the lowest
// order, else the payor of the most recent claim, else of the most recent EOB).
std::vector<PayorInfo> find_insurers(const fhir::BundleIndex& index);
std::optional<PayorInfo> primary_insurer(const fhir::BundleIndex& index);

}  // namespace chartflow::handlers::insurance
