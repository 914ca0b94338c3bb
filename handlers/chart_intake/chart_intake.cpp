#include "handlers/chart_intake/chart_intake.hpp"

#include <fmt/format.h>

#include <cctype>

#include "handlers/billing/billable_items.hpp"
#include "handlers/discharge/release.hpp"
#include "handlers/fhir/bundle_index.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers {
namespace {

constexpr std::size_t kMaxChartIdLength = 128;

}  // namespace

std::optional<std::string> validate_chart(const Json& body) {
  if (!body.is_object()) return "request body is not a JSON object";
  const Json* type = fhir::member(body, "resourceType");
  if (type == nullptr) return "resourceType is missing; expected \"Bundle\"";
  if (!type->is_string() || *type != "Bundle") {
    // Echo the type only when it is a plain name (it goes back to the uploader verbatim).
    std::string name = type->is_string() ? type->get<std::string>() : std::string();
    bool plain = !name.empty() && name.size() <= 64;
    for (char c : name) plain = plain && std::isalnum(static_cast<unsigned char>(c)) != 0;
    if (plain) return fmt::format("resourceType is \"{}\"; expected \"Bundle\"", name);
    return "resourceType is not \"Bundle\"";
  }
  const Json* entries = fhir::member(body, "entry");
  if (entries == nullptr || !entries->is_array() || entries->empty()) {
    return "Bundle has no entries";
  }
  bool has_patient = false;
  for (std::size_t i = 0; i < entries->size(); ++i) {
    const Json& entry = (*entries)[i];
    if (!entry.is_object() || entry.empty()) return fmt::format("Bundle.entry[{}] is empty", i);
    const Json* resource = fhir::member(entry, "resource");
    if (resource == nullptr) {
      if (fhir::member(entry, "request") == nullptr) {
        return fmt::format("Bundle.entry[{}] has neither a resource nor a request", i);
      }
      continue;
    }
    if (!resource->is_object() || resource->empty()) {
      return fmt::format("Bundle.entry[{}].resource is empty or not an object", i);
    }
    std::string rt = fhir::resource_type(*resource);
    if (rt.empty()) return fmt::format("Bundle.entry[{}].resource has no resourceType", i);
    if (rt == "Patient") has_patient = true;
  }
  if (!has_patient) return "Bundle has no Patient entry";
  return std::nullopt;
}

bool valid_chart_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxChartIdLength) return false;
  if (std::isalnum(static_cast<unsigned char>(id.front())) == 0) return false;
  for (char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) return false;
    if (std::isalnum(u) == 0 && c != '.' && c != '_' && c != '-') return false;
  }
  return id.find("..") == std::string_view::npos;
}

std::optional<std::string> patient_chart_id(const Json& bundle) {
  fhir::BundleIndex index(bundle);
  const Json* patient = index.patient();
  if (patient == nullptr) return std::nullopt;
  std::string id = fhir::resource_id(*patient);
  if (valid_chart_id(id)) return id;
  const Json& identifiers = fhir::array_member(*patient, "identifier");
  for (const auto& identifier : identifiers) {
    if (!fhir::has_code(fhir::object_member(identifier, "type"), "", "MR")) continue;
    std::string value = fhir::string_member(identifier, "value");
    if (valid_chart_id(value)) return value;
  }
  for (const auto& identifier : identifiers) {
    std::string value = fhir::string_member(identifier, "value");
    if (valid_chart_id(value)) return value;
  }
  return std::nullopt;
}

Json chart_event_body(const Json& bundle, const std::string& chart_id, int revision,
                      const std::string& content_hash) {
  return chart_event_body(fhir::BundleIndex(bundle), chart_id, revision, content_hash);
}

Json chart_event_body(const fhir::BundleIndex& index, const std::string& chart_id, int revision,
                      const std::string& content_hash) {
  Json body = {{"chart_id", chart_id},
               {"revision", revision},
               {"has_billable", billing::has_billable(index)},
               {"released", discharge::is_released(index)}};
  if (!content_hash.empty()) body["content_hash"] = content_hash;
  return body;
}

}  // namespace chartflow::handlers
