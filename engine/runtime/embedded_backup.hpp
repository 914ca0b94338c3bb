#pragma once

// Base backups and point-in-time restores of the embedded cluster: `chartflow backup`,
// `chartflow backup verify` and `chartflow restore` (docs/operations.md, "Backup and restore").
//
// A backup is a directory: data/ (pg_basebackup's plain copy of the cluster with the WAL it needs
// to be consistent on its own, and a backup_manifest with a SHA-256 checksum per file) and
// chartflow-backup.json (when, how big, which WAL archive the cluster was writing). With that
// archive a restore replays to any time after the backup finished.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace chartflow::runtime {

inline constexpr const char* kBackupDescription = "chartflow-backup.json";

struct BackupSummary {
  std::filesystem::path target;
  std::string started_at, finished_at;  // RFC 3339, UTC
  std::int64_t bytes = 0;
  std::optional<std::filesystem::path> wal_archive;
  // Why the backup is not in the cluster's backup_history (for the metric); empty: it is.
  std::string not_recorded = "not attempted";
};

// Takes an online base backup of the embedded cluster of `data_dir` into `target` (new, or an
// empty directory), while chartflow serves it; when nothing serves it, starts the cluster for the
// duration, archiving into `wal_archive` (the configured one) meanwhile. Throws
// std::runtime_error naming what failed.
BackupSummary take_backup(const std::filesystem::path& data_dir,
                          const std::filesystem::path& target,
                          const std::optional<std::filesystem::path>& wal_archive);

// Checks a backup: its description, and every file against the manifest (pg_verifybackup, which
// also reads the WAL the backup needs). Returns the problems found; empty means it restores.
std::vector<std::string> verify_backup(const std::filesystem::path& target);

struct RestoreOptions {
  // Replay WAL up to this time, e.g. "2026-12-02 14:05:00+00" (the zone is required); without it,
  // to the end of the archive.
  std::optional<std::string> until;
  // Where the archived WAL is; default: the archive the backup's cluster was writing, which
  // must then exist here unless `backup_only`.
  std::optional<std::filesystem::path> wal_archive;
  bool backup_only = false;  // restore the backup alone, to when it finished
};

struct RestoreSummary {
  std::optional<std::filesystem::path> wal_archive;  // replayed from; none: the backup alone
  double seconds = 0;                                // copy, replay and promotion
};

// Restores `from` into the new data dir `data_dir` (which must hold no cluster), replays the WAL
// archive on the backup's timeline (up to `until`, which may not precede the backup's end),
// promotes, and stops the cluster: `chartflow serve --data-dir` starts it as a normal data dir.
// Archives nothing, so the archive stays as it was. Verifies the backup and checks the options
// before copying; a restore that fails removes what it made. Throws std::runtime_error or
// std::invalid_argument (bad options) naming the problem.
RestoreSummary restore_backup(const std::filesystem::path& from,
                              const std::filesystem::path& data_dir, const RestoreOptions& options);

// Removes from a WAL archive the segments older than the oldest backup to keep needs (its start
// segment, from its backup_label), after verifying that backup: those segments serve only
// backups that are gone. Returns the segments removed (with `dry_run`: that would be).
std::vector<std::string> prune_wal_archive(const std::filesystem::path& archive,
                                           const std::filesystem::path& oldest_kept_backup,
                                           bool dry_run);

// Whether `text` is a valid timestamp with a zone that PostgreSQL reads unambiguously:
// YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]] then Z or +HH[:MM] / -HH[:MM].
bool is_recovery_target_time(const std::string& text);
// Its seconds since the epoch; nullopt when it is not one (2026-02-30 included).
std::optional<double> target_epoch_seconds(const std::string& text);

}  // namespace chartflow::runtime
