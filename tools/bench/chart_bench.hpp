// `chartflow bench-charts`: charts uploaded over HTTP to a real server (see README, "Benchmark
// results").
#pragma once

#include "tools/bench/bench_util.hpp"

namespace chartflow::bench {

int run_chart_bench(const Options& options);

}  // namespace chartflow::bench
