// The chart as written back by the missing-field scan: the uploaded Bundle plus one FHIR Task
// per question (status requested while open, completed once a later upload closed it). Pure;
// deterministic for equal input, so a re-run writes byte-identical content and is recognised as
// already written.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers::missing_field_scan {

inline constexpr const char* kQuestionIdentifierSystem = "urn:chartflow:chart-question";

struct QuestionRow {
  std::int64_t id = 0;
  std::string rule_id;
  std::string resource_ref;
  std::string question;
  std::string severity;
  std::string status;      // open | closed
  std::string created_at;  // ISO 8601
  std::string closed_at;   // ISO 8601 or ""
};

Json question_task(const fhir::BundleIndex& index, const std::string& chart_id,
                   const QuestionRow& question);
// The Bundle without Tasks of earlier write-backs (a client may upload a written-back chart
// again) plus a Task entry per question. Transaction and batch Bundles get a conditional PUT
// request per Task, so a FHIR server applying the Bundle updates rather than duplicates.
Json build_writeback_bundle(const fhir::BundleIndex& index, const std::string& chart_id,
                            const std::vector<QuestionRow>& questions);
// The same Bundle as build_writeback_bundle(...) as JSON text. With `source`, the text the
// index was parsed from, and no Tasks of earlier write-backs in it, the Task entries are
// spliced into that text at the end of its entry array: the chart is not serialised again
// (that was a tenth of the server's CPU per chart upload). Otherwise exactly
// build_writeback_bundle(...).dump(), written entry by entry instead of through a deep copy.
std::string writeback_text(const fhir::BundleIndex& index, const std::string& chart_id,
                           const std::vector<QuestionRow>& questions, std::string_view source = {});

// Where the top-level "entry" array of the JSON object `text` closes (the offset of its ']')
// and whether it is empty; nullopt unless `text` is an object with exactly one such array
// under a plainly written "entry" key.
struct EntryArrayEnd {
  std::size_t close = 0;
  bool empty = true;
};
std::optional<EntryArrayEnd> find_entry_array_end(std::string_view text);

}  // namespace chartflow::handlers::missing_field_scan
