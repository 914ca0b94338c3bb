// Finding the primary care doctor of a chart, from the Bundle alone (pure; any thread).
// Order: Patient.generalPractitioner (a Practitioner or PractitionerRole); else the
// participants of the most recent Encounter that has any (type PPRF "primary performer"
// preferred, else the first individual that is a practitioner); else the care team member with
// role "primary" of the most recent Claim or ExplanationOfBenefit. References to practitioners
// outside the Bundle still count ("Practitioner/123"); a bare display such as "Unknown" does not.
#pragma once

#include <optional>
#include <string>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers::doctor_review {

inline constexpr const char* kNpiSystem = "http://hl7.org/fhir/sid/us-npi";

struct DoctorMatch {
  // Who the review is assigned to: the NPI when known, else "Practitioner/<id>", else the
  // reference text.
  std::string assignee;
  std::string practitioner_ref;  // "Practitioner/<id>" or the reference text
  std::string npi;               // "" when unknown
  std::string source;            // "generalPractitioner", "encounter" or "careTeam"
  std::string display;           // the practitioner's name, for the review task only
};

std::optional<DoctorMatch> find_primary_doctor(const fhir::BundleIndex& index);

// Display data for review lists: {"patient": name, "encounter": type text of the most recent
// encounter, "encounter_ref", "encounter_start"}. Not for logs.
Json review_summary(const fhir::BundleIndex& index);

}  // namespace chartflow::handlers::doctor_review
