// Accepting a chart from any source (the chart API, the drop folder, S3 chart buckets): the one
// validation, and the revision stored with its chart.uploaded event in one transaction.
// Stateless; thread-safe (the engine services are).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "engine/module.hpp"

namespace chartflow::handlers {

inline constexpr const char* kChartUploadedEvent = "chart.uploaded";
// The intake hook's name: the drop folder's top level and S3 chart buckets feed it.
inline constexpr const char* kChartIntake = "chart";

// A chart that cannot be accepted: `status` is the HTTP status the API answers with (400 not
// JSON, 422 not an acceptable Bundle), `message` names the problem (never patient data).
using ChartRejected = IntakeRejected;

struct ChartUpload {
  std::string chart_id;
  int revision = 0;
  std::string content_hash;
  bool duplicate = false;  // identical content was uploaded before: nothing was stored
  IngestResult event;
};

// Parses and validates `raw` (a FHIR Bundle as JSON); `chart_id` defaults to the Bundle's
// Patient. `also` writes the source's own record (e.g. the S3 object or an audit record) in the
// same transaction, duplicate or not. Throws ChartRejected for bad input; database failures
// propagate.
ChartUpload upload_chart(
    EngineServices& engine, std::optional<std::string> chart_id, const std::string& raw,
    const std::string& uploader, const std::string& source,
    const std::function<void(Sql&, const std::string& chart_id)>& also = nullptr);

// The "chart" intake hook: upload_chart with the chart id taken from the Bundle.
IntakeResult chart_intake(EngineServices& engine, const IntakeRequest& request);

}  // namespace chartflow::handlers
