#include "cli/commands.hpp"
#include "cli/engine_bench.hpp"

namespace chartflow::cli {

int bench(const Args& args) { return chartflow::bench::run_engine_bench(args.options); }

}  // namespace chartflow::cli
