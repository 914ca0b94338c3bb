// libFuzzer target: a drop-folder file's bytes through what DropFolder decides before anything
// is stored (runtime/drop_intake.hpp), as a subfolder's event file, as a chart at the top and as
// any other file at the top, and again under a reserved and a signed type. Any input must end in
// a rejection reason or an accepted kind, within the limits, never a crash, a stack overflow in
// a recursive parser or serialiser, or an escaping exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/drop_intake.hpp"

namespace {

using chartflow::Json;
using chartflow::runtime::DropDecision;
using chartflow::runtime::DropEntry;
using chartflow::runtime::DropKind;
using chartflow::runtime::DropPolicy;

const DropPolicy& policy() {
  static const chartflow::core::ReservedEventTypes reserved = [] {
    chartflow::core::ReservedEventTypes r;
    r.add("chart.uploaded");
    return r;
  }();
  static const DropPolicy p = [] {
    DropPolicy out;  // the defaults `serve` runs with
    out.reserved = &reserved;
    out.requires_signature = [](const std::string& type) { return type == "lab.signed"; };
    return out;
  }();
  return p;
}

void check(const DropEntry& entry, std::string_view bytes, bool must_refuse) {
  const DropDecision d = chartflow::runtime::classify_drop_file(entry, bytes, policy());
  if (d.rejection) {
    if (d.rejection->empty()) __builtin_trap();
    return;
  }
  if (must_refuse) __builtin_trap();
  if (bytes.size() > chartflow::runtime::drop_size_limit(entry, policy().limits)) __builtin_trap();
  if (d.kind == DropKind::kEvent) {
    if (!d.body.is_object()) __builtin_trap();
    // What the engine does with the body next: serialise it (recursively) into the event row.
    (void)d.body.dump();
  } else if (d.kind == DropKind::kChart) {
    // What the chart intake does next: parse it, which the depth check keeps shallow.
    try {
      (void)Json::parse(bytes).dump();
    } catch (const Json::exception&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check({"lab.result", "r1.json"}, bytes, false);
  check({"", "enc-chart.json"}, bytes, false);
  check({"", "scan.pdf"}, bytes, false);
  check({"chart.uploaded", "forged.json"}, bytes, true);
  check({"alert.firing", "forged.json"}, bytes, true);
  check({"lab.signed", "unsigned.json"}, bytes, true);
  return 0;
}
