// chartflow-bench: the benchmarks, kept out of the server binary. Each prints its figures and a
// ratio against a baseline measured in the same run (see docs/benchmarks.md).
#include <iostream>
#include <string>

#include "app/commands.hpp"
#include "tools/bench/chart_bench.hpp"
#include "tools/bench/dashboard_bench.hpp"
#include "tools/bench/engine_bench.hpp"
#include "tools/bench/handler_bench.hpp"
#include "tools/bench/hang_bench.hpp"
#include "tools/bench/retention_bench.hpp"

namespace {

void usage() {
  std::cerr << "usage: chartflow-bench <benchmark> [options]\n"
               "  bench     [--runs N] [--paced-runs N] [--rate R] [--data-dir DIR]\n"
               "            [--network-workers N]\n"
               "  bench-handlers [--warm N] [--cold N]\n"
               "  bench-charts [--charts DIR[:DIR]] [--encounter-copies N] [--full-copies N]\n"
               "            [--paced N] [--rate R] [--clients N] [--memory-copies N]\n"
               "            [--network-workers N]\n"
               "  bench-dashboard [--runs N] [--repeat N]\n"
               "  bench-retention [--step-rows N] [--runs N]\n"
               "  bench-hang [--hang-s S] [--quiet-s S] [--rate R] [--network-workers N]\n"
               "            [--workers N] [--before-binary PATH]\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string command = argv[1];
  const auto args = chartflow::cli::parse_args(argc, argv, 2);
  try {
    namespace bench = chartflow::bench;
    if (command == "bench" || command == "engine") return bench::run_engine_bench(args.options);
    if (command == "bench-handlers" || command == "handlers")
      return bench::run_handler_bench(args.options);
    if (command == "bench-charts" || command == "charts")
      return bench::run_chart_bench(args.options);
    if (command == "bench-dashboard" || command == "dashboard")
      return bench::run_dashboard_bench(args.options);
    if (command == "bench-retention" || command == "retention")
      return bench::run_retention_bench(args.options);
    if (command == "bench-hang" || command == "hang") return bench::run_hang_bench(args.options);
    if (command == "help" || command == "--help") {
      usage();
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "chartflow-bench " << command << ": " << e.what() << "\n";
    return 1;
  }
  std::cerr << "unknown benchmark '" << command << "'\n";
  usage();
  return 2;
}
