// libFuzzer target: a workflow file (YAML or JSON) through the loader and validator, as
// `chartflow validate` and `serve` read them. Every input must end in a workflow or in errors
// with messages, never in a crash, a hang or an exception escaping the loader.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "config/workflow_loader.hpp"

namespace {

const chartflow::config::HandlerCheck& handlers() {
  static const std::set<std::string> kNames = {
      "noop",          "sleep",   "fail",      "flaky",     "wait_signal", "work",
      "doctor_review", "billing", "insurance", "discharge", "bill_send",   "missing_field_scan"};
  static const chartflow::config::HandlerCheck check{
      [](const std::string& name) { return kNames.count(name) > 0; }, {}};
  return check;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto result = chartflow::config::load_workflow_text(text, "fuzz.yaml", handlers());
  if (result.workflow) {
    // A loaded definition must survive what the registry does with it next.
    (void)chartflow::config::content_hash(*result.workflow);
  }
  for (const auto& e : result.errors) (void)e.to_string();
  return 0;
}
