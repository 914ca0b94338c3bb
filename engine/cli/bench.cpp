#include "cli/commands.hpp"
#include "cli/engine_bench.hpp"
#include "cli/handler_bench.hpp"

namespace chartflow::cli {

int bench(const Args& args) { return chartflow::bench::run_engine_bench(args.options); }

int bench_handlers(const Args& args) { return chartflow::bench::run_handler_bench(args.options); }

}  // namespace chartflow::cli
