// The body of a `chart.uploaded` event as the chart handlers read it:
// {"chart_id": "...", "revision": N, "has_billable": bool, "released": bool,
//  "content_hash": "..."} (the hash is absent from events made before it was added).
#pragma once

#include <optional>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::handlers {

struct ChartEvent {
  std::string chart_id;
  int revision = 0;
  bool has_billable = false;
  bool released = false;
  // sha256 hex of the revision's content: lets ChartCache find the parse without a query.
  std::string content_hash;
};

// nullopt when chart_id or a positive revision is missing. Revision may be a number or a string.
std::optional<ChartEvent> parse_chart_event(const Json& body);

}  // namespace chartflow::handlers
