#include "handlers/doctor_review/doctor_lookup.hpp"

#include <algorithm>
#include <vector>

#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::doctor_review {
namespace {

using fhir::array_member;
using fhir::object_member;
using fhir::string_member;

constexpr const char* kParticipationTypeSystem =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

std::string npi_of(const Json& practitioner) {
  for (const auto& id : array_member(practitioner, "identifier")) {
    if (string_member(id, "system") == kNpiSystem) {
      std::string v = string_member(id, "value");
      if (!v.empty()) return v;
    }
  }
  return {};
}

// "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|123" names an NPI even unresolved.
std::string npi_from_conditional(const std::string& reference) {
  std::string marker = std::string("identifier=") + kNpiSystem + "|";
  auto pos = reference.find(marker);
  if (pos == std::string::npos) return {};
  std::string value = reference.substr(pos + marker.size());
  auto amp = value.find('&');
  return value.substr(0, amp);
}

std::string reference_type(const std::string& reference) {
  std::string head = reference.substr(0, reference.find('?'));
  if (reference.find('?') != std::string::npos) {
    auto slash = head.rfind('/');
    return slash == std::string::npos ? head : head.substr(slash + 1);
  }
  auto slash = head.rfind('/');
  if (slash == std::string::npos) return {};
  std::string type = head.substr(0, slash);
  if (auto h = type.find("/_history"); h != std::string::npos) {
    // "Practitioner/1/_history/2": the type sits two segments further up.
    type = type.substr(0, h);
    slash = type.rfind('/');
    type = slash == std::string::npos ? std::string() : type.substr(0, slash);
  }
  auto prev = type.rfind('/');
  return prev == std::string::npos ? type : type.substr(prev + 1);
}

// A DoctorMatch for a Reference, or nullopt when it does not name a practitioner.
std::optional<DoctorMatch> match_reference(const fhir::BundleIndex& index, const Json& reference,
                                           const Json& holder, const char* source, int depth = 0) {
  if (!reference.is_object() || depth > 2) return std::nullopt;
  const std::string text = string_member(reference, "reference");
  const Json* target = index.resolve_reference(reference, &holder);
  DoctorMatch m;
  m.source = source;
  m.display = string_member(reference, "display");
  if (target != nullptr) {
    std::string type = fhir::resource_type(*target);
    if (type == "PractitionerRole") {
      const Json& inner = object_member(*target, "practitioner");
      if (auto via = match_reference(index, inner, *target, source, depth + 1)) return via;
      m.practitioner_ref = index.ref_of(*target);
      m.assignee = m.practitioner_ref;
      return m;
    }
    if (type != "Practitioner") return std::nullopt;
    m.npi = npi_of(*target);
    std::string id = fhir::resource_id(*target);
    m.practitioner_ref = id.empty() ? text : "Practitioner/" + id;
    if (m.display.empty()) m.display = fhir::person_name(*target);
  } else {
    if (text.empty()) return std::nullopt;  // a bare display ("Unknown") names nobody
    std::string type = reference_type(text);
    if (type != "Practitioner" && type != "PractitionerRole") return std::nullopt;
    m.npi = npi_from_conditional(text);
    m.practitioner_ref = text;
  }
  if (m.practitioner_ref.empty()) return std::nullopt;
  m.assignee = !m.npi.empty() ? m.npi : m.practitioner_ref;
  return m;
}

std::string start_of(const Json& encounter) {
  return string_member(object_member(encounter, "period"), "start");
}

std::vector<const Json*> newest_first(std::vector<const Json*> resources,
                                      std::string (*key)(const Json&)) {
  std::stable_sort(resources.begin(), resources.end(),
                   [key](const Json* a, const Json* b) { return key(*a) > key(*b); });
  return resources;
}

std::string claim_recency(const Json& claim) {
  std::string created = string_member(claim, "created");
  return created.empty() ? string_member(object_member(claim, "billablePeriod"), "start") : created;
}

bool is_primary_performer(const Json& participant) {
  for (const auto& type : array_member(participant, "type")) {
    if (fhir::has_code(type, kParticipationTypeSystem, "PPRF") ||
        fhir::has_code(type, "", "PPRF")) {
      return true;
    }
  }
  return false;
}

std::optional<DoctorMatch> from_encounter(const fhir::BundleIndex& index, const Json& encounter) {
  const Json& participants = array_member(encounter, "participant");
  for (const auto& p : participants) {
    if (!is_primary_performer(p)) continue;
    if (auto m = match_reference(index, object_member(p, "individual"), encounter, "encounter")) {
      return m;
    }
  }
  for (const auto& p : participants) {
    if (auto m = match_reference(index, object_member(p, "individual"), encounter, "encounter")) {
      return m;
    }
  }
  return std::nullopt;
}

std::optional<DoctorMatch> from_care_team(const fhir::BundleIndex& index, const Json& claim) {
  for (const auto& member : array_member(claim, "careTeam")) {
    if (!fhir::has_code(object_member(member, "role"), "", "primary")) continue;
    if (auto m = match_reference(index, object_member(member, "provider"), claim, "careTeam")) {
      return m;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<DoctorMatch> find_primary_doctor(const fhir::BundleIndex& index) {
  if (const Json* patient = index.patient()) {
    for (const auto& gp : array_member(*patient, "generalPractitioner")) {
      if (auto m = match_reference(index, gp, *patient, "generalPractitioner")) return m;
    }
  }
  for (const Json* encounter : newest_first(index.of_type("Encounter"), start_of)) {
    if (string_member(*encounter, "status") == "entered-in-error") continue;
    if (auto m = from_encounter(index, *encounter)) return m;
  }
  std::vector<const Json*> claims = index.of_type("Claim");
  const auto& eobs = index.of_type("ExplanationOfBenefit");
  claims.insert(claims.end(), eobs.begin(), eobs.end());
  for (const Json* claim : newest_first(std::move(claims), claim_recency)) {
    if (auto m = from_care_team(index, *claim)) return m;
  }
  return std::nullopt;
}

Json review_summary(const fhir::BundleIndex& index) {
  Json summary = Json::object();
  if (const Json* patient = index.patient()) {
    summary["patient"] = fhir::person_name(*patient);
    summary["patient_ref"] = index.ref_of(*patient);
  }
  auto encounters = newest_first(index.of_type("Encounter"), start_of);
  if (!encounters.empty()) {
    const Json& latest = *encounters.front();
    std::string type;
    for (const auto& t : array_member(latest, "type")) {
      type = fhir::concept_text(t);
      if (!type.empty()) break;
    }
    summary["encounter"] = type;
    summary["encounter_ref"] = index.ref_of(latest);
    summary["encounter_start"] = start_of(latest);
    summary["encounter_class"] = string_member(object_member(latest, "class"), "code");
  }
  summary["encounters"] = encounters.size();
  return summary;
}

}  // namespace chartflow::handlers::doctor_review
