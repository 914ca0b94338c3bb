// chartflow: serve | worker | migrate | validate | logs | upload | tokens | users | audit | bench*.
// See README for every option.
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace {

void usage() {
  std::cerr << "usage: chartflow <command> [options]\n"
               "  serve     [--listen HOST:PORT] [--data-dir DIR] [--workflows DIR]\n"
               "            [--database-url URL | --database-url-file FILE] [--workers N]\n"
               "            [--batch-size N] [--tls-cert FILE --tls-key FILE] [--insecure-listen]\n"
               "            [--body-limit B] [--upload-limit B] [--header-limit B]\n"
               "            [--json-depth-limit N] [--bundle-entry-limit N]\n"
               "            [--header-timeout-ms N] [--body-timeout-ms N] [--upload-slots N]\n"
               "            [--webhook-secrets FILE] [--drop-dir DIR] [--s3-config FILE]\n"
               "            [--session-ttl D] [--public-metrics]\n"
               "  worker    --database-url URL [--concurrency N]\n"
               "  migrate   [--database-url URL | --data-dir DIR]\n"
               "  validate  FILE...\n"
               "  logs      [--server URL] [--level L] [--since T] [--until T] [--workflow W]\n"
               "            [--run ID] [--step S] [--q TEXT] [--limit N]\n"
               "  upload    FILE... [--server URL] [--chart-id ID]\n"
               "  bench     [--runs N] [--paced-runs N] [--rate R] [--data-dir DIR]\n"
               "  tokens    create --role ROLE --name NAME [--expires 30d] [--assignee REF]\n"
               "            | revoke ID|NAME | list     [--database-url URL | --data-dir DIR]\n"
               "  users     create --name NAME --role ROLE [--assignee REF]   (password on stdin)\n"
               "  audit     verify                     [--database-url URL | --data-dir DIR]\n"
               "  bench-handlers [--warm N] [--cold N]\n"
               "  bench-charts [--charts DIR[:DIR]] [--encounter-copies N] [--full-copies N]\n"
               "            [--paced N] [--rate R] [--clients N] [--memory-copies N]\n"
               "  bench-dashboard [--runs N] [--repeat N]\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string command = argv[1];
  chartflow::cli::Args args;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        args.options[a.substr(2, eq - 2)] = a.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        args.options[a.substr(2)] = argv[++i];
      } else {
        args.options[a.substr(2)] = "true";
      }
    } else {
      args.positional.push_back(a);
    }
  }
  try {
    if (command == "serve") return chartflow::cli::serve(args, /*with_api=*/true);
    if (command == "worker") return chartflow::cli::serve(args, /*with_api=*/false);
    if (command == "migrate") return chartflow::cli::migrate(args);
    if (command == "validate") return chartflow::cli::validate(args);
    if (command == "logs") return chartflow::cli::logs(args);
    if (command == "upload") return chartflow::cli::upload(args);
    if (command == "bench") return chartflow::cli::bench(args);
    if (command == "tokens") return chartflow::cli::tokens(args);
    if (command == "audit") return chartflow::cli::audit(args);
    if (command == "users") return chartflow::cli::users(args);
    if (command == "bench-handlers") return chartflow::cli::bench_handlers(args);
    if (command == "bench-charts") return chartflow::cli::bench_charts(args);
    if (command == "bench-dashboard") return chartflow::cli::bench_dashboard(args);
    if (command == "help" || command == "--help") {
      usage();
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "chartflow " << command << ": " << e.what() << "\n";
    return 1;
  }
  std::cerr << "unknown command '" << command << "'\n";
  usage();
  return 2;
}
