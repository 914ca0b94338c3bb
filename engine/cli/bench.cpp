#include "cli/chart_bench.hpp"
#include "cli/commands.hpp"
#include "cli/dashboard_bench.hpp"
#include "cli/engine_bench.hpp"
#include "cli/handler_bench.hpp"

namespace chartflow::cli {

int bench(const Args& args) { return chartflow::bench::run_engine_bench(args.options); }

int bench_handlers(const Args& args) { return chartflow::bench::run_handler_bench(args.options); }
int bench_charts(const Args& args) { return chartflow::bench::run_chart_bench(args.options); }

int bench_dashboard(const Args& args) {
  return chartflow::bench::run_dashboard_bench(args.options);
}

}  // namespace chartflow::cli
