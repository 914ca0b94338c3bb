// libFuzzer target: a chart upload body through what the upload route does before storing it:
// the server's JSON limits, the parse, Bundle validation, the chart id the Bundle implies and the
// event summary (billable items, release). Any input must end in a 4xx-style problem or a
// summary, never a crash or an escaping exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "handlers/chart_intake/chart_intake.hpp"
#include "http/request_intake.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const chartflow::http::InputLimits kLimits;  // the defaults `serve` runs with
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  if (chartflow::http::check_json_limits(body, kLimits)) return 0;
  chartflow::Json bundle;
  try {
    bundle = chartflow::http::parse_json_text(body);  // as the upload route parses it
  } catch (const chartflow::http::HttpError&) {
    return 0;
  }
  if (chartflow::handlers::validate_chart(bundle)) return 0;
  auto id = chartflow::handlers::patient_chart_id(bundle);
  if (id && !chartflow::handlers::valid_chart_id(*id)) __builtin_trap();
  (void)chartflow::handlers::chart_event_body(bundle, id.value_or("fuzz"), 1).dump();
  return 0;
}
