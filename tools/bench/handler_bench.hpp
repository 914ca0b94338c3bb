// `chartflow bench-handlers`: invocation latency of an external Python handler, cold and warm,
// against the built-in noop handler in the same run (see README, "Benchmark results").
#pragma once

#include <map>
#include <string>

namespace chartflow::bench {

int run_handler_bench(const std::map<std::string, std::string>& options);

}  // namespace chartflow::bench
