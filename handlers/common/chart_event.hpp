// The body of a `chart.uploaded` event as the chart handlers read it: which revision of which
// chart, {"chart_id": "...", "revision": N, "content_hash": "..."} (the hash is absent from events
// made before it was added). The body's has_billable and released are for the workflow's
// conditions; handlers read clinical and billing facts from the stored revision, never from an
// event body, so this struct does not carry them.
#pragma once

#include <optional>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::handlers {

struct ChartEvent {
  std::string chart_id;
  int revision = 0;
  // sha256 hex of the revision's content: lets ChartCache find the parse without a query.
  std::string content_hash;
};

// nullopt when chart_id or a positive revision is missing. Revision may be a number or a string.
std::optional<ChartEvent> parse_chart_event(const Json& body);

}  // namespace chartflow::handlers
