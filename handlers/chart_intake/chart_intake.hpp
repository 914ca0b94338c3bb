// What the upload path needs to accept a chart: validation of the uploaded Bundle, the chart id,
// and the summary flags put into the `chart.uploaded` event body so the workflow's `when`
// conditions can see them. Pure functions; safe from any thread. Messages returned here go to
// the uploader in a 4xx body; they name the problem, never patient data.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers {

// Accepts every chart in tests/data/charts (largest 3.9 MB) with a wide margin.
inline constexpr std::size_t kDefaultMaxChartBytes = std::size_t{32} * 1024 * 1024;

// nullopt when `body` is an acceptable chart; otherwise what is wrong with it: not a JSON
// object, resourceType not Bundle, no entries, an empty or malformed entry, no Patient entry.
// Liberal otherwise: any Bundle.type, unknown elements and entries without a resource (DELETE
// or GET requests in a transaction) are accepted.
std::optional<std::string> validate_chart(const Json& body);

// [A-Za-z0-9][A-Za-z0-9._-]{0,127} and no "..": safe in URLs, file names and log lines.
bool valid_chart_id(std::string_view chart_id);

// The chart id implied by the Bundle: its Patient's id, else the Patient's medical record
// number, else its first identifier value, whichever is a valid chart id; nullopt when none is.
std::optional<std::string> patient_chart_id(const Json& bundle);

// The `chart.uploaded` event body: {"chart_id", "revision", "has_billable", "released"}.
// has_billable: a completed MedicationAdministration or a billable Claim item is present.
// released: an Encounter is finished with a discharge disposition.
Json chart_event_body(const Json& bundle, const std::string& chart_id, int revision,
                      const std::string& content_hash = "");
Json chart_event_body(const fhir::BundleIndex& index, const std::string& chart_id, int revision,
                      const std::string& content_hash);

}  // namespace chartflow::handlers
