#include "runtime/embedded_backup.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "runtime/embedded_postgres.hpp"
#include "runtime/pg_commands.hpp"
#include "store/store.hpp"

namespace chartflow::runtime {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace pg_commands;  // NOLINT(google-build-using-namespace): this file is their user

constexpr const char* kBackupData = "data";
constexpr int kDescriptionFormat = 1;
constexpr int kServerLogLines = 6;

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The value of `key=` in a libpq key=value connection string (ours has no quoted values).
std::string conninfo_value(const std::string& conninfo, const std::string& key) {
  std::istringstream words(conninfo);
  for (std::string word; words >> word;) {
    if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
  }
  return {};
}

std::int64_t tree_bytes(const fs::path& root) {
  std::int64_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    std::error_code ec;
    if (entry.is_regular_file(ec)) bytes += static_cast<std::int64_t>(entry.file_size(ec));
  }
  return bytes;
}

Json read_description(const fs::path& target) {
  std::ifstream in(target / kBackupDescription);
  if (!in) throw std::runtime_error((target / kBackupDescription).string() + " is missing");
  try {
    Json description = Json::parse(in);
    if (description.value("format", 0) != kDescriptionFormat)
      throw std::runtime_error("unknown format");
    return description;
  } catch (const std::exception& e) {
    throw std::runtime_error((target / kBackupDescription).string() +
                             " is unreadable: " + e.what());
  }
}

// How to reach a cluster a chartflow process serves (or that we started): its socket, its
// admin role, its programs, and who runs them.
struct Access {
  fs::path pg_dir, socket_dir, bindir;
  std::string admin;
  ClusterUser user;
  Credentials creds;
  std::vector<std::string> env;

  CommandResult run(const std::vector<std::string>& argv, const fs::path& cwd) const {
    return run_command(argv, creds, cwd, env);
  }
  std::string psql(const std::string& sql) const {
    return admin_psql(bindir, socket_dir, admin, creds, env, pg_dir, sql);
  }
};

Access access_for(const fs::path& data_dir, const std::string& conninfo) {
  Access a;
  a.pg_dir = data_dir / "pg";
  a.socket_dir = conninfo_value(conninfo, "host");
  a.bindir = find_bindir(a.pg_dir / "data");
  a.admin = admin_role(a.pg_dir);
  a.user = cluster_user_for(a.pg_dir);
  a.creds = credentials_for(a.user.switch_user, a.user.uid, a.user.gid, a.user.name);
  a.env = child_environment(a.user.switch_user, a.user.name, a.user.home);
  return a;
}

// A new or empty directory that the cluster's user owns and can reach.
void prepare_target(const fs::path& target, const Access& a) {
  std::error_code ec;
  if (fs::exists(target) && !fs::is_empty(target, ec)) {
    throw std::runtime_error("backup target " + target.string() +
                             " is not empty; back up into a new directory");
  }
  fs::create_directories(target);
  fs::permissions(target, fs::perms::owner_all, fs::perm_options::replace);
  if (a.user.switch_user && ::chown(target.c_str(), a.user.uid, a.user.gid) != 0)
    throw_errno("chown " + target.string());
  if (!can_traverse(a.creds, target)) {
    throw std::runtime_error("backup target " + target.string() + " is not reachable by the '" +
                             a.user.name + "' user, which runs the embedded PostgreSQL");
  }
}

void record(const std::string& conninfo, BackupSummary& summary) {
  try {
    store::Store store(conninfo);
    store.record_backup(
        {summary.started_at, summary.finished_at, summary.target.string(), summary.bytes,
         summary.wal_archive ? std::optional<std::string>(summary.wal_archive->string())
                             : std::nullopt});
    summary.not_recorded.clear();
  } catch (const std::exception& e) {
    // The backup stands; only the metric misses it (a database chartflow has not migrated yet
    // has no backup_history).
    summary.not_recorded = e.what();
  }
}

}  // namespace

std::optional<double> target_epoch_seconds(const std::string& text) {
  static const std::regex kTime(
      R"((\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?(Z|([+-])(\d{2}):?(\d{2})?))");
  std::smatch m;
  if (!std::regex_match(text, m, kTime)) return std::nullopt;
  const auto number = [&](int i) { return m[i].matched ? std::stoi(m[i].str()) : 0; };
  const std::chrono::year_month_day day{std::chrono::year(number(1)),
                                        std::chrono::month(static_cast<unsigned>(number(2))),
                                        std::chrono::day(static_cast<unsigned>(number(3)))};
  const int hours = number(4), minutes = number(5), seconds = number(6);
  if (!day.ok() || hours > 23 || minutes > 59 || seconds > 59) return std::nullopt;
  int offset_minutes = 0;
  if (m[9].matched) {
    if (number(10) > 23 || number(11) > 59) return std::nullopt;
    offset_minutes = (number(10) * 60 + number(11)) * (m[9].str() == "-" ? -1 : 1);
  }
  const auto days = std::chrono::sys_days(day).time_since_epoch().count();
  return static_cast<double>(days) * 86400.0 + hours * 3600 + minutes * 60 + seconds +
         (m[7].matched ? std::stod(m[7].str()) : 0.0) - offset_minutes * 60;
}

bool is_recovery_target_time(const std::string& text) {
  return target_epoch_seconds(text).has_value();
}

BackupSummary take_backup(const fs::path& data_dir_in, const fs::path& target_in,
                          const std::optional<fs::path>& wal_archive) {
  if (!fs::exists(data_dir_in / "pg" / "data" / "PG_VERSION"))
    throw std::runtime_error("no embedded cluster in data dir " + data_dir_in.string());
  const fs::path data_dir = fs::canonical(data_dir_in);
  const fs::path target = fs::absolute(target_in);

  // Ours when nothing serves the data dir: started for the backup, stopped after it.
  std::optional<EmbeddedPostgres> own;
  std::string conninfo;
  // With the configured archive, so the WAL written meanwhile is archived as when serve runs.
  EmbeddedSettings settings;
  settings.wal_archive = wal_archive;
  own.emplace(data_dir, settings);
  try {
    conninfo = own->start();
  } catch (const DataDirInUse&) {
    own.reset();
    auto running = EmbeddedPostgres::running_conninfo(data_dir);
    if (!running) throw;
    conninfo = *running;
  }
  const Access a = access_for(data_dir, conninfo);
  prepare_target(target, a);

  // Read before the copy, so a backup that finishes always gets its description.
  const std::string server_settings = a.psql(
      "SELECT current_setting('data_checksums'), current_setting('archive_mode'), "
      "coalesce(current_setting('basic_archive.archive_directory', true), ''), "
      "current_setting('server_version_num')");
  std::vector<std::string> fields;
  std::istringstream split(server_settings);
  for (std::string field; std::getline(split, field, '|');) fields.push_back(field);
  fields.resize(4);

  BackupSummary summary;
  summary.target = target;
  if (fields[1] != "off" && !fields[2].empty()) summary.wal_archive = fields[2];
  summary.started_at = utc_now();
  // The WAL the backup needs comes along (-X stream), so it is consistent without the archive;
  // a fast checkpoint starts it at once instead of at the next scheduled one.
  const CommandResult result =
      a.run({(a.bindir / "pg_basebackup").string(), "-h", a.socket_dir.string(), "-p",
             std::to_string(kPort), "-U", a.admin, "-w", "-D", (target / kBackupData).string(),
             "-X", "stream", "-c", "fast", "-l", "chartflow backup " + summary.started_at,
             "--manifest-checksums=SHA256"},
            target);
  if (result.exit_code != 0) throw std::runtime_error(command_failure("pg_basebackup", result));
  summary.finished_at = utc_now();
  summary.bytes = tree_bytes(target / kBackupData);

  Json description = {
      {"format", kDescriptionFormat},
      {"started_at", summary.started_at},
      {"finished_at", summary.finished_at},
      {"bytes", summary.bytes},
      {"data_checksums", fields[0] == "on"},
      {"server_version_num", fields[3]},
      {"admin_role", a.admin},
      {"wal_archive", summary.wal_archive ? Json(summary.wal_archive->string()) : Json(nullptr)}};
  {
    std::ofstream out(target / kBackupDescription, std::ios::trunc);
    out << description.dump(2) << "\n";
    out.flush();
    if (!out) throw std::runtime_error("could not write " + (target / kBackupDescription).string());
  }
  fsync_dir(target);
  record(conninfo, summary);
  return summary;
}

std::vector<std::string> verify_backup(const fs::path& target_in) {
  const fs::path target = fs::absolute(target_in);
  std::vector<std::string> problems;
  try {
    read_description(target);
  } catch (const std::exception& e) {
    problems.emplace_back(e.what());
  }
  if (!fs::exists(target / kBackupData / "backup_manifest")) {
    problems.push_back((target / kBackupData / "backup_manifest").string() + " is missing");
    return problems;
  }
  // As ourselves: only reads, and root may check a copy that the cluster's user cannot open.
  const CommandResult result =
      run_command({(find_bindir(target / kBackupData) / "pg_verifybackup").string(), "-q",
                   (target / kBackupData).string()},
                  Credentials{}, target, child_environment(false, "", ""));
  if (result.exit_code != 0) problems.push_back(command_failure("pg_verifybackup", result));
  return problems;
}

std::vector<std::string> prune_wal_archive(const fs::path& archive_in,
                                           const fs::path& oldest_kept_backup, bool dry_run) {
  const fs::path archive = fs::absolute(archive_in);
  if (!fs::is_directory(archive))
    throw std::invalid_argument("--wal-archive " + archive.string() + " is not a directory");
  if (const auto problems = verify_backup(oldest_kept_backup); !problems.empty()) {
    throw std::runtime_error(
        "backup " + oldest_kept_backup.string() +
        " does not verify, so the WAL before it may still be needed: " + problems.front());
  }
  // pg_archivecleanup compares segment numbers across timelines: with another timeline in the
  // archive it could remove WAL that timeline's backups need.
  for (const auto& entry : fs::directory_iterator(archive)) {
    if (entry.path().extension() == ".history") {
      throw std::runtime_error("WAL archive " + archive.string() +
                               " holds more than one timeline (" +
                               entry.path().filename().string() +
                               "): prune refuses, since it could remove WAL another timeline "
                               "needs; after a restore, serve the restored cluster with a new "
                               "archive");
    }
  }
  // "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)"
  static const std::regex kStart(R"(START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\))");
  std::smatch match;
  const std::string label = read_small_file(oldest_kept_backup / kBackupData / "backup_label");
  if (!std::regex_search(label, match, kStart))
    throw std::runtime_error("backup " + oldest_kept_backup.string() +
                             " has no start segment in data/backup_label");
  std::vector<std::string> argv = {
      (find_bindir(oldest_kept_backup / kBackupData) / "pg_archivecleanup").string()};
  // -n lists what it would remove; the real run removes without listing (-d would), so the
  // list always comes from -n.
  argv.insert(argv.end(), {"-n", archive.string(), match[1].str()});
  CommandResult result =
      run_command(argv, Credentials{}, archive, child_environment(false, "", ""));
  if (result.exit_code != 0) throw std::runtime_error(command_failure("pg_archivecleanup", result));
  std::vector<std::string> removed;
  std::istringstream lines(result.output);
  for (std::string line; std::getline(lines, line);) {
    if (!trim(line).empty()) removed.push_back(fs::path(trim(line)).filename().string());
  }
  if (!dry_run) {
    argv.erase(argv.begin() + 1);  // without -n
    result = run_command(argv, Credentials{}, archive, child_environment(false, "", ""));
    if (result.exit_code != 0)
      throw std::runtime_error(command_failure("pg_archivecleanup", result));
  }
  return removed;
}

RestoreSummary restore_backup(const fs::path& from_in, const fs::path& data_dir_in,
                              const RestoreOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  const fs::path from = fs::absolute(from_in);
  // Everything that can be refused is refused before anything is copied.
  std::optional<double> until;
  if (options.until) {
    until = target_epoch_seconds(*options.until);
    if (!until)
      throw std::invalid_argument("--until " + *options.until +
                                  ": give a valid time with its zone, e.g. \"2026-12-02 "
                                  "14:05:00+00\"");
  }
  if (const auto problems = verify_backup(from); !problems.empty()) {
    std::string text = "backup " + from.string() + " does not verify:";
    for (const auto& p : problems) text += "\n  " + p;
    throw std::runtime_error(text);
  }
  const Json description = read_description(from);
  const std::string finished_at = description.value("finished_at", std::string());
  if (until) {
    const auto finished = target_epoch_seconds(finished_at);
    if (finished && *until < *finished) {
      throw std::invalid_argument("--until " + *options.until + " is before backup " +
                                  from.string() + " finished (" + finished_at +
                                  "): restore an older backup");
    }
  }

  RestoreSummary summary;
  if (options.wal_archive) {
    summary.wal_archive = fs::absolute(*options.wal_archive);
  } else if (description["wal_archive"].is_string() && !options.backup_only) {
    summary.wal_archive = description["wal_archive"].get<std::string>();
  }
  if (summary.wal_archive) {
    if (!fs::is_directory(*summary.wal_archive)) {
      throw std::invalid_argument(
          "WAL archive " + summary.wal_archive->string() +
          " is not a directory here: mount it, give --wal-archive DIR, or restore the backup "
          "alone with --backup-only (to " +
          finished_at + ")");
    }
    if (!is_plain_path(summary.wal_archive->string()))
      throw std::invalid_argument("WAL archive " + summary.wal_archive->string() +
                                  ": use a path of letters, digits and / . _ - + @ only");
  }
  if (until && !summary.wal_archive) {
    throw std::invalid_argument(
        "--until needs the WAL archive the cluster wrote after the backup; the backup names "
        "none: give --wal-archive DIR");
  }
  if (fs::exists(data_dir_in / "pg")) {
    throw std::invalid_argument("data dir " + data_dir_in.string() +
                                " already holds a cluster; restore into a new data dir");
  }

  const bool created = fs::create_directories(data_dir_in);
  const fs::path data_dir = fs::canonical(data_dir_in);
  const fs::path pg_dir = data_dir / "pg";
  // A failed restore leaves nothing a later start could take for a cluster: what it made goes.
  const auto clean_up = [&] {
    std::error_code ignored;
    fs::remove_all(pg_dir, ignored);
    if (created) fs::remove_all(data_dir, ignored);
  };
  try {
    check_path_is_shell_safe(data_dir);
    // As root: the restored cluster belongs to whoever owned the backed-up one (a packaged
    // install's chartflow user), so its serve can start it.
    const ClusterUser user = cluster_user_for(from / kBackupData);
    if (created && user.switch_user) {
      fs::permissions(data_dir, fs::perms::group_exec | fs::perms::others_exec,
                      fs::perm_options::add);
    }
    if (user.switch_user && summary.wal_archive &&
        !can_traverse(credentials_for(true, user.uid, user.gid, user.name), *summary.wal_archive)) {
      throw std::invalid_argument("WAL archive " + summary.wal_archive->string() +
                                  " is not reachable by the '" + user.name + "' user");
    }
    make_dir(pg_dir, fs::perms::owner_all);
    // Copied under a scratch name and renamed, so an interrupted copy is never taken for a
    // cluster.
    const fs::path scratch = pg_dir / "data.restoring";
    fs::copy(from / kBackupData, scratch,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::permissions(scratch, fs::perms::owner_all, fs::perm_options::replace);
    if (description.value("admin_role", std::string()) == kAdminRole)
      std::ofstream(pg_dir / kAdminRoleFile, std::ios::trunc) << kAdminRole << "\n";
    if (summary.wal_archive) std::ofstream(scratch / "recovery.signal", std::ios::trunc);
    if (user.switch_user) chown_tree(pg_dir, user.uid, user.gid);
    fs::rename(scratch, pg_dir / "data");
    fsync_dir(pg_dir);

    EmbeddedSettings settings;
    settings.recover_from = summary.wal_archive;
    settings.recovery_target = options.until;
    EmbeddedPostgres cluster(data_dir, settings);
    cluster.start();
    if (summary.wal_archive) cluster.wait_until_promoted();
    cluster.stop();
  } catch (const std::exception& e) {
    // The server's reason (a target past the archive's end) is in its log, which goes with the
    // rest; it holds recovery messages only.
    const std::string server_log = tail_lines(pg_dir / "log" / "postgres.log", kServerLogLines);
    clean_up();
    throw std::runtime_error(
        std::string(e.what()) +
        (server_log.empty() ? "" : "\nthe server's log ended:\n" + server_log) +
        "(the partial restore in " + data_dir.string() + " was removed)");
  }
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace chartflow::runtime
