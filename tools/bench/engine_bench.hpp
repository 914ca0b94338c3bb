// `chartflow bench`: the engine benchmark (see README, "Benchmark results").
#pragma once

#include <map>
#include <string>

namespace chartflow::bench {

int run_engine_bench(const std::map<std::string, std::string>& options);

}  // namespace chartflow::bench
