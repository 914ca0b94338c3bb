// chartflow: serve | worker | config | migrate | validate | logs | upload | workflows | runs |
// reprocess | retention | holds | tokens | users | audit | backup | restore; bench* hands over to
// chartflow-bench.
// `chartflow <command> --help` prints a command's options.
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
#include "app/options.hpp"
#include "app/settings.hpp"
#include "engine/util/install_prefix.hpp"

namespace {

constexpr const char* kDatabaseOptions =
    "  --database-url URL | --database-url-file FILE   the database (else the embedded one)\n"
    "  --data-dir DIR                  embedded PostgreSQL's data [./chartflow-data]\n"
    "  --config FILE                   read the database settings from this config file\n";

constexpr const char* kClientOptions =
    "  --server URL                    the server [$CHARTFLOW_SERVER, else "
    "http://127.0.0.1:8080]\n"
    "  (the credential comes from $CHARTFLOW_TOKEN)\n";

void usage(std::ostream& out) {
  out << "usage: chartflow <command> [options]     chartflow <command> --help for its options\n"
         "  serve     API, dashboard, scheduler and workers in one process\n"
         "  worker    extra step workers on a shared PostgreSQL\n"
         "  config    check | show: the settings serve and worker would run with\n"
         "  migrate   apply the database migrations\n"
         "  validate  check workflow files\n"
         "  upload    upload chart Bundles to a server\n"
         "  logs      read step logs from a server\n"
         "  workflows list, pause, resume or migrate workflows on a server\n"
         "  runs      pause or resume one run on a server\n"
         "  reprocess re-run selected runs (dry run first) on a server\n"
         "  retention what is kept, its size, and expiry (dry run first) on a server\n"
         "  holds     legal holds: a chart's runs kept past every expiry\n"
         "  tokens    create | revoke | list API tokens\n"
         "  users     create | disable | enable dashboard users\n"
         "  audit     verify the audit trail's hash chain\n"
         "  backup    online base backup of the embedded PostgreSQL; backup verify\n"
         "  restore   a backup into a new data dir, to a point in time\n"
         "  bench...  runs chartflow-bench (the benchmarks' own executable; see its help)\n";
}

// Every command's --help: what it does and every option it reads, and nothing else happens.
std::string command_usage(const std::string& command) {
  if (command == "serve") return chartflow::cli::server_usage(true);
  if (command == "worker") return chartflow::cli::server_usage(false);
  if (command == "config")
    return "usage: chartflow config check [serve options]\n"
           "       chartflow config show  [serve options]\n"
           "       chartflow config get NAME [serve options]\n"
           "check: reads the config file (--config, $CHARTFLOW_CONFIG, else the installed\n"
           "/etc/chartflow/chartflow.yaml), the CHARTFLOW_* variables and the flags as serve\n"
           "would, and the workflow files; exits 1 naming FILE:LINE of the first problem.\n"
           "show: the effective settings as a config file, each with where it came from,\n"
           "secrets redacted. get: one setting's value (or its default), for scripts.\n"
           "`chartflow serve --help` lists the settings.\n";
  if (command == "migrate")
    return std::string("usage: chartflow migrate [options]\n") + kDatabaseOptions;
  if (command == "validate")
    return "usage: chartflow validate FILE... [--workflows DIR]\n"
           "  --workflows DIR   where settings/, rules/ and handlers/ are [each file's folder]\n";
  if (command == "upload")
    return std::string(
               "usage: chartflow upload FILE... [options]\n"
               "  --chart-id ID                   the chart's id [the Bundle's Patient "
               "id]\n") +
           kClientOptions;
  if (command == "logs")
    return std::string(
               "usage: chartflow logs [options]\n"
               "  --level L                       debug, info, warning or error and above\n"
               "  --since T | --until T           ISO 8601 times\n"
               "  --workflow W | --run ID | --step S | --q TEXT   filters\n"
               "  --limit N                       most lines [100]\n") +
           kClientOptions;
  if (command == "workflows")
    return std::string(
               "usage: chartflow workflows list\n"
               "       chartflow workflows pause NAME [--reason TEXT]\n"
               "       chartflow workflows resume NAME\n"
               "       chartflow workflows migrate --workflow W --from N --to M\n"
               "                                   [--map OLD=NEW]... [--dry-run]\n"
               "pause: no step of the workflow is claimed until it is resumed; events still\n"
               "start runs, which queue; steps already running finish.\n"
               "migrate: moves W's unfinished runs from version N to version M. A run moves\n"
               "when every step it has started exists in M under its name or the name --map\n"
               "gives it, and none is running; steps not started take M's definition, M's new\n"
               "steps are added, unstarted steps M lacks are dropped. --dry-run prints the plan\n"
               "per run (what stays and why, what runs next) and changes nothing.\n") +
           kClientOptions;
  if (command == "reprocess")
    return std::string(
               "usage: chartflow reprocess --workflow W [--from T] [--to T] [--status S[,S]]\n"
               "                           [--chart ID] [--failed-step STEP] [--dry-run]\n"
               "                           [--resend] [--force --reason TEXT] [--batch-size N]\n"
               "       chartflow reprocess list | status ID | cancel ID\n"
               "Starts a new run of W (its latest version) for the original event of each\n"
               "selected run: created in [--from, --to), with the given status, of the chart,\n"
               "or whose step --failed-step failed or is parked. --dry-run prints how many runs\n"
               "and charts, and per step what the re-run would do outside chartflow, and changes\n"
               "nothing. Ledger entries already present are skipped; insurer notifications\n"
               "already sent go again only with --resend; bills already sent only with --force\n"
               "and a --reason (audited). Runs start in batches (--batch-size, 50); cancel stops\n"
               "further batches.\n") +
           kClientOptions;
  if (command == "retention")
    return std::string(
               "usage: chartflow retention [status]\n"
               "       chartflow retention expire [--dry-run]\n"
               "status: the retention settings, every archive month and log day with its size,\n"
               "and the holds. expire: drops the months and days past their retention now (the\n"
               "server also does it hourly); --dry-run lists them and changes nothing.\n") +
           kClientOptions;
  if (command == "holds")
    return std::string(
               "usage: chartflow holds list\n"
               "       chartflow holds add SUBJECT --reason TEXT\n"
               "       chartflow holds release SUBJECT --reason TEXT\n"
               "A held subject (a chart id) keeps its runs, with their steps, history and events,\n"
               "past every expiry until released. Both are audited.\n") +
           kClientOptions;
  if (command == "runs")
    return std::string(
               "usage: chartflow runs pause ID [--reason TEXT]\n"
               "       chartflow runs resume ID\n"
               "       chartflow runs parked [--limit N]\n"
               "       chartflow runs retry ID [STEP]\n"
               "       chartflow runs skip ID STEP --reason TEXT\n"
               "       chartflow runs fail ID STEP\n"
               "parked: the steps waiting for an operator (retries used up, on_exhausted: park).\n"
               "retry ID: a failed run again; retry, skip, fail ID STEP: a parked step, or a\n"
               "parked element of a for_each step (send_bill[1]); a skip needs a reason.\n") +
           kClientOptions;
  if (command == "tokens")
    return std::string(
               "usage: chartflow tokens create --role ROLE --name NAME [--expires 30d] "
               "[--assignee REF]\n"
               "       chartflow tokens revoke ID|NAME\n"
               "       chartflow tokens list\n"
               "  roles: uploader, reviewer, billing, operator, admin\n") +
           kDatabaseOptions;
  if (command == "users")
    return std::string(
               "usage: chartflow users create --name NAME --role ROLE [--assignee REF]   "
               "(password on stdin)\n"
               "       chartflow users disable NAME | enable NAME\n") +
           kDatabaseOptions;
  if (command == "audit")
    return std::string("usage: chartflow audit verify [--expect-head HASH]\n") + kDatabaseOptions;
  if (command == "backup")
    return "usage: chartflow backup --to DIR [--data-dir DIR] [--wal-archive DIR] [--config FILE]\n"
           "       chartflow backup verify DIR\n"
           "       chartflow backup prune --wal-archive DIR --oldest-backup DIR [--dry-run]\n"
           "backup: an online base backup of the embedded PostgreSQL (while serve runs, or\n"
           "starting the cluster for it) into DIR, new or empty; recorded for the metric\n"
           "chartflow_backup_last_success_timestamp_seconds.\n"
           "verify: checks every file against the backup's manifest and its WAL; exit 3 if not.\n"
           "prune: removes the archived WAL that only backups older than --oldest-backup need\n"
           "(after verifying that backup); delete those older backups' directories yourself.\n"
           "  --data-dir DIR                  the embedded cluster [./chartflow-data]\n";
  if (command == "restore")
    return "usage: chartflow restore --from BACKUP_DIR --data-dir NEW_DIR [--until TIME]\n"
           "                         [--wal-archive DIR | --backup-only]\n"
           "Verifies the backup, copies it into NEW_DIR, replays the archived WAL up to TIME\n"
           "(e.g. \"2026-12-02 14:05:00+00\"; the zone is required) or to the archive's end,\n"
           "and leaves a data dir that chartflow serve --data-dir NEW_DIR starts.\n"
           "  --wal-archive DIR               the archived WAL [the one the backup names]\n"
           "  --backup-only                   the backup alone, to when it finished\n";
  return "";
}

bool wants_help(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  const std::string command = argv[1];
  if (command == "help" || command == "--help" || command == "-h") {
    usage(std::cout);
    return 0;
  }
  if (command.rfind("bench", 0) != 0 && wants_help(argc, argv)) {
    const std::string text = command_usage(command);
    if (text.empty()) {
      std::cerr << "unknown command '" << command << "'\n";
      usage(std::cerr);
      return 2;
    }
    std::cout << text;
    return 0;
  }
  const chartflow::cli::Args args = chartflow::cli::parse_args(argc, argv, 2);
  // The benchmarks are their own executable beside this one; `chartflow bench...` hands over.
  if (command.rfind("bench", 0) == 0) {
    const auto bench =
        chartflow::util::executable_dir().value_or(std::filesystem::path(".")) / "chartflow-bench";
    argv[0] = const_cast<char*>("chartflow-bench");
    execv(bench.c_str(), argv);
    std::cerr << "chartflow " << command << ": cannot run " << bench.string() << ": "
              << std::strerror(errno) << "\n";
    return 1;
  }
  try {
    if (command == "serve" || command == "worker") {
      const bool with_api = command == "serve";
      const auto settings = chartflow::cli::resolve_settings(args, with_api);
      try {
        return chartflow::cli::serve(settings, with_api);
      } catch (const std::exception& e) {
        std::cerr << "chartflow " << command << ": " << chartflow::cli::locate(settings, e.what())
                  << "\n";
        return 1;
      }
    }
    if (command == "config") return chartflow::cli::config(args);
    if (command == "migrate") return chartflow::cli::migrate(args);
    if (command == "validate") return chartflow::cli::validate(args);
    if (command == "logs") return chartflow::cli::logs(args);
    if (command == "upload") return chartflow::cli::upload(args);
    if (command == "workflows") return chartflow::cli::workflows(args);
    if (command == "runs") return chartflow::cli::runs(args);
    if (command == "reprocess") return chartflow::cli::reprocess(args);
    if (command == "retention") return chartflow::cli::retention(args);
    if (command == "holds") return chartflow::cli::holds(args);
    if (command == "tokens") return chartflow::cli::tokens(args);
    if (command == "audit") return chartflow::cli::audit(args);
    if (command == "users") return chartflow::cli::users(args);
    if (command == "backup") return chartflow::cli::backup(args);
    if (command == "restore") return chartflow::cli::restore(args);
  } catch (const std::exception& e) {
    std::cerr << "chartflow " << command << ": " << e.what() << "\n";
    return 1;
  }
  std::cerr << "unknown command '" << command << "'\n";
  usage(std::cerr);
  return 2;
}
