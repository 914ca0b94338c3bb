// `chartflow-bench bench-hang`: how late charts' scans start while the insurer hangs (issue #15,
// item 6), without bulkheads and with them, in one run.
#pragma once

#include "tools/bench/bench_util.hpp"

namespace chartflow::bench {

int run_hang_bench(const Options& options);

}  // namespace chartflow::bench
