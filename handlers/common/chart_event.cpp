#include "handlers/common/chart_event.hpp"

#include <cstdlib>

#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers {

std::optional<ChartEvent> parse_chart_event(const Json& body) {
  ChartEvent event;
  event.chart_id = fhir::string_member(body, "chart_id");
  if (!valid_chart_id(event.chart_id)) return std::nullopt;
  auto revision = fhir::number_member(body, "revision");
  if (!revision || *revision < 1 || *revision > 2'000'000'000 ||
      *revision != static_cast<double>(static_cast<int>(*revision))) {
    return std::nullopt;
  }
  event.revision = static_cast<int>(*revision);
  event.content_hash = fhir::string_member(body, "content_hash");
  return event;
}

}  // namespace chartflow::handlers
