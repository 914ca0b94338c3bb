// `chartflow bench-dashboard`: the runs list and search over 100,000 runs (see README,
// "Benchmark results").
#pragma once

#include "tools/bench/bench_util.hpp"

namespace chartflow::bench {

int run_dashboard_bench(const Options& options);

}  // namespace chartflow::bench
