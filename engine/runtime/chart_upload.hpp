// Accepting a chart from any source (the chart API, the drop folder, S3 puts): the one
// validation, and the revision stored with its chart.uploaded event in one transaction.
// Stateless; thread-safe (the engine is).
#pragma once

#include <optional>
#include <string>

#include "runtime/engine.hpp"

namespace chartflow::runtime {

inline constexpr const char* kChartUploadedEvent = "chart.uploaded";

// A chart that cannot be accepted: `status` is the HTTP status the API answers with (400 not
// JSON, 422 not an acceptable Bundle), `message` names the problem (never patient data).
struct ChartRejected {
  int status;
  std::string message;
};

struct ChartUpload {
  std::string chart_id;
  int revision = 0;
  std::string content_hash;
  bool duplicate = false;  // identical content was uploaded before: nothing was stored
  store::IngestResult event;
};

// Parses and validates `raw` (a FHIR Bundle as JSON); `chart_id` defaults to the Bundle's
// Patient. `also` writes the source's own record (e.g. the S3 object) in the same transaction,
// duplicate or not. Throws ChartRejected for bad input; database failures propagate.
ChartUpload upload_chart(Engine& engine, std::optional<std::string> chart_id,
                         const std::string& raw, const std::string& uploader,
                         const std::string& source,
                         const std::function<void(Sql&)>& also = nullptr);

}  // namespace chartflow::runtime
