// Guarded read access to FHIR JSON. FHIR content arrives from outside and may hold any shape: an
// element can be missing, null, of the wrong type or unknown. Every accessor here returns an
// empty value instead of throwing, so handlers never crash on odd charts.
// Pure functions over const Json; safe to call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::fhir {

// The member `key` of `obj`, or nullptr when obj is not an object or the member is absent/null.
const Json* member(const Json& obj, std::string_view key);
// The string member `key`, or "" when absent or not a string.
std::string string_member(const Json& obj, std::string_view key);
// The array member `key`, or an empty array when absent or not an array.
const Json& array_member(const Json& obj, std::string_view key);
// The object member `key`, or an empty object when absent or not an object.
const Json& object_member(const Json& obj, std::string_view key);
// The numeric member `key` (a JSON number, or a string holding a decimal), else nullopt.
std::optional<double> number_member(const Json& obj, std::string_view key);
// The boolean member `key` (true/false or "true"/"false"), else `fallback`.
bool bool_member(const Json& obj, std::string_view key, bool fallback);

// True for a value that carries information: not null, not "", not [] or {}.
bool has_value(const Json& value);

// Values at a dotted element path ("participant.individual"). Arrays fan out at every step, so
// the result holds every value reachable along the path; empty when the path is absent.
std::vector<const Json*> element_values(const Json& resource, std::string_view dotted_path);
// True when any value at the path carries information. Alternatives separated by '|'
// ("reasonCode|reasonReference") count as present when any of them is.
bool element_present(const Json& resource, std::string_view dotted_path);

struct Coding {
  std::string system;
  std::string code;
  std::string display;
};

// The codings of a CodeableConcept, or the Coding itself when given a bare Coding.
std::vector<Coding> codings(const Json& concept_or_coding);
std::optional<Coding> first_coding(const Json& concept_or_coding);
// True when a coding has `code` (and `system`, unless system is empty).
bool has_code(const Json& concept_or_coding, std::string_view system, std::string_view code);
// Human text of a CodeableConcept: text, else the first coding's display, else its code.
std::string concept_text(const Json& concept_or_coding);

std::string resource_type(const Json& resource);
std::string resource_id(const Json& resource);

// A person's name for display: HumanName.text, else "given family" of the official (or first)
// name; "" when there is none. For API output and patient documents only, never for logs.
std::string person_name(const Json& person);

// Amounts are kept in cents so sums are exact; FHIR decimals are converted once here.
std::int64_t to_cents(double value);
std::string format_cents(std::int64_t cents);  // "1234.50", "-0.75"

}  // namespace chartflow::handlers::fhir
