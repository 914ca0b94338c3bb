// How long chart revisions are kept (issue #17 item 5): settings/chart-retention.yaml
//   revisions: forever        # the default, also without the file
//   revisions: 3650d          # ten years; at least 365d
// and handler `chart_revision_expiry` (workflows/chart-retention.yaml, daily), which deletes the
// revisions older than that, except each chart's newest (the record as it stands) and every
// revision of a held chart (chartflow holds). Each chart's deletion is audited as
// `chart.revisions_expired` (counts and revision numbers, never content). Output: counts.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include "engine/handler.hpp"
#include "engine/module.hpp"

namespace chartflow::handlers::chart_retention {

inline constexpr std::chrono::hours kShortestRevisionRetention{24 * 365};

struct RevisionRetention {
  std::optional<std::chrono::milliseconds> keep;  // nullopt: forever
  // From the file's JSON (null: no file, forever). Throws std::invalid_argument naming the key.
  static RevisionRetention from_json(const Json& json);
};

class RevisionExpiryHandler : public Handler {
 public:
  // A run deletes at most this many revisions; `more` in its output says another run is due.
  static constexpr int kBatch = 5000;
  RevisionExpiryHandler(RevisionRetention retention, std::shared_ptr<ServicesSlot> services)
      : retention_(retention), services_(std::move(services)) {}
  StepOutcome run(StepContext& ctx) override;

 private:
  RevisionRetention retention_;
  std::shared_ptr<ServicesSlot> services_;
};

}  // namespace chartflow::handlers::chart_retention
