// chartflow: serve | worker | migrate | validate | logs | upload | tokens | users | audit; bench*
// hands over to chartflow-bench.
// See README for every option.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "app/commands.hpp"

namespace {

void usage() {
  std::cerr << "usage: chartflow <command> [options]\n"
               "  serve     [--listen HOST:PORT] [--data-dir DIR] [--workflows DIR]\n"
               "            [--database-url URL | --database-url-file FILE] [--workers N]\n"
               "            [--batch-size N] [--network-workers N]\n"
               "            [--tls-cert FILE --tls-key FILE] [--insecure-listen]\n"
               "            [--body-limit B] [--upload-limit B] [--header-limit B]\n"
               "            [--json-depth-limit N] [--bundle-entry-limit N]\n"
               "            [--header-timeout-ms N] [--body-timeout-ms N] [--upload-slots N]\n"
               "            [--upload-queue N] [--upload-wait-ms N] [--max-connections N]\n"
               "            [--max-connections-per-client N] [--handler-user NAME]\n"
               "            [--webhook-secrets FILE] [--drop-dir DIR] [--s3-config FILE]\n"
               "            [--session-ttl D] [--db-call-timeout D] [--public-metrics]\n"
               "  worker    --database-url URL [--concurrency N] [--network-workers N]\n"
               "  migrate   [--database-url URL | --data-dir DIR]\n"
               "  validate  FILE...\n"
               "  logs      [--server URL] [--level L] [--since T] [--until T] [--workflow W]\n"
               "            [--run ID] [--step S] [--q TEXT] [--limit N]\n"
               "  upload    FILE... [--server URL] [--chart-id ID]\n"
               "  tokens    create --role ROLE --name NAME [--expires 30d] [--assignee REF]\n"
               "            | revoke ID|NAME | list     [--database-url URL | --data-dir DIR]\n"
               "  users     create --name NAME --role ROLE [--assignee REF]   (password on stdin)\n"
               "  audit     verify                     [--database-url URL | --data-dir DIR]\n"
               "  bench...  runs chartflow-bench (the benchmarks' own executable; see its help)\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string command = argv[1];
  const chartflow::cli::Args args = chartflow::cli::parse_args(argc, argv, 2);
  // The benchmarks are their own executable beside this one; `chartflow bench...` hands over.
  if (command.rfind("bench", 0) == 0) {
    std::error_code ec;
    const auto bench =
        std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "chartflow-bench";
    argv[0] = const_cast<char*>("chartflow-bench");
    execv(bench.c_str(), argv);
    std::cerr << "chartflow " << command << ": cannot run " << bench.string() << ": "
              << std::strerror(errno) << "\n";
    return 1;
  }
  try {
    if (command == "serve") return chartflow::cli::serve(args, /*with_api=*/true);
    if (command == "worker") return chartflow::cli::serve(args, /*with_api=*/false);
    if (command == "migrate") return chartflow::cli::migrate(args);
    if (command == "validate") return chartflow::cli::validate(args);
    if (command == "logs") return chartflow::cli::logs(args);
    if (command == "upload") return chartflow::cli::upload(args);
    if (command == "tokens") return chartflow::cli::tokens(args);
    if (command == "audit") return chartflow::cli::audit(args);
    if (command == "users") return chartflow::cli::users(args);
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
