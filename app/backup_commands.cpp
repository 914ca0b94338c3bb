// `chartflow backup --to DIR`, `backup verify DIR`, `backup prune` and `chartflow restore --from
// DIR --data-dir NEW [--until TIME] [--wal-archive DIR]`: the embedded cluster's base backups and
// point-in-time restores (runtime/embedded_backup.hpp; docs/operations.md).
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "app/commands.hpp"
#include "app/database.hpp"
#include "app/settings.hpp"
#include "runtime/embedded_backup.hpp"

namespace chartflow::cli {
namespace {

constexpr int kInvalidBackup = 3;

int verify(const Args& args) {
  if (args.positional.size() != 2)
    throw std::invalid_argument("usage: chartflow backup verify BACKUP_DIR");
  const auto problems = runtime::verify_backup(args.positional[1]);
  if (problems.empty()) {
    std::cout << "backup " << args.positional[1]
              << " verified: every file matches its manifest checksum and its WAL is complete\n";
    return 0;
  }
  std::cerr << "backup " << args.positional[1] << " is NOT valid:\n";
  for (const auto& p : problems) std::cerr << "  " << p << "\n";
  return kInvalidBackup;
}

int prune(const Args& args) {
  const auto archive = args.get("wal-archive");
  const auto oldest = args.get("oldest-backup");
  if (!archive || !oldest)
    throw std::invalid_argument(
        "usage: chartflow backup prune --wal-archive DIR --oldest-backup BACKUP_DIR [--dry-run]");
  const bool dry_run = args.get("dry-run").has_value();
  const auto removed = runtime::prune_wal_archive(*archive, *oldest, dry_run);
  std::cout << (dry_run ? "would remove " : "removed ") << removed.size()
            << " WAL segment(s) older than backup " << *oldest << " needs";
  if (!removed.empty()) std::cout << " (" << removed.front() << " to " << removed.back() << ")";
  std::cout << "\n";
  return 0;
}

}  // namespace

int backup(const Args& command_line) {
  if (!command_line.positional.empty() && command_line.positional[0] == "verify")
    return verify(command_line);
  if (!command_line.positional.empty() && command_line.positional[0] == "prune")
    return prune(command_line);
  if (!command_line.positional.empty())
    throw std::invalid_argument("unknown backup command '" + command_line.positional[0] +
                                "'; see chartflow backup --help");
  const Args args = with_database_settings(command_line);
  if (args.get("database-url") || args.get("database-url-file"))
    throw std::invalid_argument(
        "chartflow backup backs up the embedded PostgreSQL; back up an external server with its "
        "own tools (docs/operations.md: pgBackRest)");
  const auto target = args.get("to");
  if (!target) throw std::invalid_argument("--to DIR is required: where the backup goes");
  std::optional<std::filesystem::path> archive;
  if (auto configured = args.get("wal-archive")) archive = *configured;
  const auto summary =
      runtime::take_backup(args.get_or("data-dir", kDefaultDataDir), *target, archive);
  std::cout << "backup " << summary.target.string() << ": " << summary.bytes << " bytes, "
            << summary.started_at << " to " << summary.finished_at << "\n";
  if (summary.wal_archive)
    std::cout << "WAL archive: " << summary.wal_archive->string() << " (restore to any time after "
              << summary.finished_at << ")\n";
  else
    std::cout << "no WAL archive (serve --wal-archive DIR): this backup restores to "
              << summary.finished_at << " only\n";
  if (!summary.not_recorded.empty())
    std::cerr << "note: the backup stands, but chartflow_backup_last_success_timestamp_seconds "
                 "misses it: not recorded in backup_history: "
              << summary.not_recorded << "\n";
  return 0;
}

int restore(const Args& args) {
  const auto from = args.get("from");
  const auto data_dir = args.get("data-dir");
  if (!from || !data_dir)
    throw std::invalid_argument("--from BACKUP_DIR and --data-dir NEW_DIR are required");
  runtime::RestoreOptions options;
  options.until = args.get("until");
  if (auto archive = args.get("wal-archive")) options.wal_archive = *archive;
  options.backup_only = args.get("backup-only").has_value();
  const auto summary = runtime::restore_backup(*from, *data_dir, options);
  std::cout << "restored " << *from << " into " << *data_dir;
  if (summary.wal_archive)
    std::cout << ", WAL replayed from " << summary.wal_archive->string() << " "
              << (options.until ? "up to " + *options.until : std::string("to its end"));
  std::cout << " in " << summary.seconds << " s\n"
            << "start it with a new WAL archive (the old one stays as the source of restores to "
               "earlier times), then take a backup:\n"
            << "  chartflow serve --data-dir " << *data_dir << " --wal-archive NEW_ARCHIVE_DIR\n";
  return 0;
}

}  // namespace chartflow::cli
