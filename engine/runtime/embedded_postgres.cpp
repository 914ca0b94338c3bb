#include "runtime/embedded_postgres.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/pg_commands.hpp"

namespace chartflow::runtime {
namespace {

namespace fs = std::filesystem;
using namespace pg_commands;  // NOLINT(google-build-using-namespace): this file is their user

constexpr const char* kLockFile = "chartflow.lock";
constexpr int kPgCtlTimeoutSeconds = 300;  // crash recovery after an unclean stop can be slow
// sockaddr_un.sun_path is 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPathLength = 107;
constexpr int kLogLinesInErrors = 20;

}  // namespace

EmbeddedPostgres::EmbeddedPostgres(std::filesystem::path data_dir, EmbeddedSettings settings)
    : data_dir_(std::move(data_dir)),
      settings_(std::move(settings)),
      supervisor_([this] { return postmaster_alive(); }, [this] { restart_server(); }) {}

EmbeddedPostgres::~EmbeddedPostgres() {
  try {
    stop();
  } catch (const std::exception& e) {
    std::cerr << "event=embedded_postgres_stop_failed data_dir=" << data_dir_.string()
              << " error=\"" << e.what() << "\"\n";
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string EmbeddedPostgres::start() {
  if (running_) return conninfo_;
  if (data_dir_.empty()) throw std::runtime_error("embedded PostgreSQL needs a data dir");

  const bool created = fs::create_directories(data_dir_);
  data_dir_ = fs::canonical(data_dir_);
  check_path_is_shell_safe(data_dir_);
  pg_dir_ = data_dir_ / "pg";
  pgdata_ = pg_dir_ / "data";

  user_ = cluster_user_for(pg_dir_);
  if (created && user_.switch_user) {
    // Our fresh directory must let the server user through to pg/.
    fs::permissions(data_dir_, fs::perms::group_exec | fs::perms::others_exec,
                    fs::perm_options::add);
  }

  lock_data_dir();
  bindir_ = find_bindir(pgdata_);
  prepare_directories();
  init_cluster_if_needed();
  stop_orphaned_server();
  start_server();
  running_ = true;
  try {
    create_database_if_missing();
  } catch (...) {
    try {
      stop();
    } catch (const std::exception&) {
      // The original failure is the one worth reporting.
    }
    throw;
  }
  conninfo_ = "host=" + socket_dir_.string() + " port=" + std::to_string(kPort) +
              " dbname=" + kDatabase + " user=" + kRole;
  // Holds no secret (the socket trusts its owner); lets `chartflow tokens` reach this cluster.
  std::ofstream(data_dir_ / kConninfoFile, std::ios::trunc) << conninfo_ << "\n";
  return conninfo_;
}

std::optional<std::string> EmbeddedPostgres::running_conninfo(const fs::path& data_dir) {
  std::string text = trim(read_small_file(data_dir / kConninfoFile));
  if (text.empty()) return std::nullopt;
  return text;
}

void EmbeddedPostgres::supervise(SupervisorSettings settings) {
  if (!running_) throw std::logic_error("EmbeddedPostgres::supervise() needs a started server");
  supervisor_.start(std::move(settings));
}

void EmbeddedPostgres::stop() {
  supervisor_.stop();
  if (!running_) return;
  stop_server();
  running_ = false;
  if (socket_dir_in_tmp_) {
    std::error_code ignored;
    fs::remove(socket_dir_, ignored);  // only succeeds once the server has removed its socket
  }
}

void EmbeddedPostgres::lock_data_dir() {
  if (lock_fd_ >= 0) return;
  const fs::path lock_path = data_dir_ / kLockFile;
  // O_CLOEXEC: the lock must die with this process, never be inherited by the server.
  Fd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw_errno("open " + lock_path.string());
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) throw_errno("flock " + lock_path.string());
    std::string holder = trim(read_small_file(lock_path));
    if (holder.empty()) holder = "unknown";
    throw DataDirInUse("data dir " + data_dir_.string() +
                       " is in use by another chartflow process (pid " + holder + ")");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    throw_errno("write " + lock_path.string());
  }
  lock_fd_ = fd.release();
}

void EmbeddedPostgres::prepare_archive_dir(fs::path& dir) const {
  dir = fs::absolute(dir);
  if (!is_plain_path(dir.string())) {
    throw std::runtime_error("WAL archive " + dir.string() +
                             ": use a path of letters, digits and / . _ - + @ only (it goes into "
                             "the server's archive and restore commands)");
  }
  // A new archive is made for the cluster's user; an existing one is left as it is (it may be
  // another cluster's), and must already let that user in.
  if (!fs::exists(dir)) {
    make_dir(dir, fs::perms::owner_all);
    if (user_.switch_user && ::chown(dir.c_str(), user_.uid, user_.gid) != 0)
      throw_errno("chown " + dir.string());
  }
  if (!can_traverse(credentials_for(user_.switch_user, user_.uid, user_.gid, user_.name), dir)) {
    throw std::runtime_error("WAL archive " + dir.string() + " is not reachable by the '" +
                             user_.name + "' user, which runs the embedded PostgreSQL");
  }
}

void EmbeddedPostgres::prepare_directories() {
  if (user_.switch_user) {
    const Credentials creds = credentials_for(true, user_.uid, user_.gid, user_.name);
    if (!can_traverse(creds, data_dir_)) {
      throw std::runtime_error(
          "data dir " + data_dir_.string() + " is not reachable by the '" + user_.name +
          "' user, which runs the embedded PostgreSQL when chartflow runs as root (a parent "
          "directory such as /root is not searchable by others); choose another --data-dir, "
          "e.g. /var/lib/chartflow");
    }
  }
  std::error_code ec;
  struct stat st {};
  if (!user_.switch_user && ::stat(pg_dir_.c_str(), &st) == 0 && st.st_uid != user_.uid) {
    throw std::runtime_error(pg_dir_.string() + " belongs to uid " + std::to_string(st.st_uid) +
                             "; run chartflow as that user (or as root), or choose another "
                             "--data-dir");
  }
  make_dir(pg_dir_, fs::perms::owner_all);
  make_dir(pg_dir_ / "log", fs::perms::owner_all);

  const fs::path in_tree = pg_dir_ / "run";
  const std::string socket_file = "/.s.PGSQL." + std::to_string(kPort);
  if (in_tree.string().size() + socket_file.size() <= kMaxSocketPathLength &&
      is_plain_path(in_tree.string())) {
    make_dir(in_tree, fs::perms::owner_all);
    socket_dir_ = in_tree;
    socket_dir_in_tmp_ = false;
  } else {
    socket_dir_ = fs::temp_directory_path(ec) / ("chartflow-" + hex_hash(data_dir_.string()));
    if (ec || !is_plain_path(socket_dir_.string()) ||
        socket_dir_.string().size() + socket_file.size() > kMaxSocketPathLength) {
      socket_dir_ = "/tmp/chartflow-" + hex_hash(data_dir_.string());
    }
    prepare_tmp_socket_dir(socket_dir_, user_.uid, user_.gid);
    socket_dir_in_tmp_ = true;
  }
  if (user_.switch_user) chown_tree(pg_dir_, user_.uid, user_.gid);
  if (settings_.wal_archive && !settings_.recover_from) prepare_archive_dir(*settings_.wal_archive);
  if (settings_.recover_from) prepare_archive_dir(*settings_.recover_from);
}

void EmbeddedPostgres::init_cluster_if_needed() {
  if (fs::exists(pgdata_ / "PG_VERSION")) return;
  if (fs::exists(pgdata_)) {
    throw std::runtime_error(pgdata_.string() +
                             " exists but is not a PostgreSQL data directory; move it away or "
                             "choose another --data-dir");
  }
  // initdb into a scratch directory and rename, so an interrupted initdb never leaves a
  // half-made cluster where the next start would take it for a real one.
  const fs::path scratch = pg_dir_ / "data.initdb";
  fs::remove_all(scratch);
  const Credentials creds = credentials_for(user_.switch_user, user_.uid, user_.gid, user_.name);
  const CommandResult result = run_command(
      {(bindir_ / "initdb").string(), "--pgdata=" + scratch.string(),
       std::string("--username=") + kAdminRole, "--encoding=UTF8", "--locale=C.UTF-8",
       "--data-checksums", "--auth-local=trust", "--auth-host=reject", "--no-instructions"},
      creds, pg_dir_, child_environment(user_.switch_user, user_.name, user_.home));
  if (result.exit_code != 0) {
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    throw std::runtime_error(command_failure("initdb", result));
  }
  std::ofstream(pg_dir_ / kAdminRoleFile, std::ios::trunc) << kAdminRole << "\n";
  fs::rename(scratch, pgdata_);
  fsync_dir(pg_dir_);
}

void EmbeddedPostgres::stop_orphaned_server() {
  const fs::path pid_file = pgdata_ / "postmaster.pid";
  if (!fs::exists(pid_file)) return;
  std::istringstream first_line(read_small_file(pid_file));
  long pid = 0;
  if (!(first_line >> pid) || pid <= 0) return;  // pg_ctl and postgres cope with a torn file
  if (is_postgres_process(static_cast<pid_t>(pid))) {
    // We hold the data dir lock, so this server was left behind by a chartflow that crashed.
    // Restart it under our settings.
    std::cerr << "event=embedded_postgres_orphan_stopping pid=" << pid << "\n";
    stop_server();
  } else {
    remove_stale_pid_file();
  }
}

void EmbeddedPostgres::remove_stale_pid_file() {
  const fs::path pid_file = pgdata_ / "postmaster.pid";
  std::istringstream first_line(read_small_file(pid_file));
  long pid = 0;
  if (!(first_line >> pid) || pid <= 0) return;  // pg_ctl and postgres cope with a torn file
  const auto server_pid = static_cast<pid_t>(pid);
  if (!is_postgres_process(server_pid) && is_alive(server_pid)) {
    // The pid was recycled by an unrelated process; postgres would refuse to start while the
    // stale file names a live pid.
    std::error_code ignored;
    fs::remove(pid_file, ignored);
  }
}

fs::path EmbeddedPostgres::server_log_file() const { return pg_dir_ / "log" / "postgres.log"; }

std::string EmbeddedPostgres::server_options() const {
  // Command-line settings outrank postgresql.conf and ALTER SYSTEM: durability stays on and
  // the server stays off the network. Paths here are plain (see prepare_directories), so the -o
  // string, which pg_ctl hands to /bin/sh, needs quotes only around values with spaces.
  std::string options = "-c listen_addresses= -c port=" + std::to_string(kPort) +
                        " -c unix_socket_directories=" + socket_dir_.string() +
                        " -c unix_socket_permissions=0700 -c fsync=on"
                        " -c synchronous_commit=on -c full_page_writes=on"
                        // The LLVM JIT needs writable executable memory, which a hardened
                        // service forbids (deploy/systemd, MemoryDenyWriteExecute); chart
                        // queries are short and gain nothing from it.
                        " -c jit=off";
  // A restore archives nothing: the archive it reads stays as it was, so a restore drill beside
  // a running production cluster cannot change what later restores replay.
  const auto& archive = settings_.recover_from ? std::nullopt : settings_.wal_archive;
  if (archive) {
    options +=
        " -c archive_mode=on -c archive_library=basic_archive"
        " -c basic_archive.archive_directory=" +
        archive->string() + " -c archive_timeout=" + std::to_string(kArchiveTimeoutSeconds);
  }
  if (settings_.recover_from) {
    options += " -c 'restore_command=cp " + settings_.recover_from->string() +
               "/%f %p' -c recovery_target_action=promote -c recovery_target_timeline=current";
    if (settings_.recovery_target)
      options += " -c 'recovery_target_time=" + *settings_.recovery_target + "'";
  }
  return options;
}

std::optional<std::string> EmbeddedPostgres::try_start_server() {
  const fs::path log_file = server_log_file();
  // Command-line settings outrank postgresql.conf and ALTER SYSTEM: durability stays on and
  // the server stays off the network. The socket dir is a plain path (see
  // prepare_directories), so the -o string, which pg_ctl hands to /bin/sh, needs no quoting.
  const std::string options = server_options();
  const Credentials creds = credentials_for(user_.switch_user, user_.uid, user_.gid, user_.name);
  const CommandResult result = run_command(
      {(bindir_ / "pg_ctl").string(), "start", "-w", "-t", std::to_string(kPgCtlTimeoutSeconds),
       "-s", "-D", pgdata_.string(), "-l", log_file.string(), "-o", options},
      creds, pg_dir_, child_environment(user_.switch_user, user_.name, user_.home));
  if (result.exit_code == 0) return std::nullopt;
  return command_failure("pg_ctl start", result);
}

void EmbeddedPostgres::start_server() {
  if (auto failure = try_start_server()) {
    const fs::path log_file = server_log_file();
    throw std::runtime_error(*failure + "\nlast lines of " + log_file.string() + ":\n" +
                             tail_lines(log_file, kLogLinesInErrors));
  }
}

bool EmbeddedPostgres::postmaster_alive() const {
  std::istringstream first_line(read_small_file(pgdata_ / "postmaster.pid"));
  long pid = 0;
  return first_line >> pid && pid > 0 && is_postgres_process(static_cast<pid_t>(pid));
}

void EmbeddedPostgres::restart_server() {
  // A tmp cleaner may have taken the socket directory while the server was down.
  if (socket_dir_in_tmp_) prepare_tmp_socket_dir(socket_dir_, user_.uid, user_.gid);
  reap_dead_postgres_children();
  remove_stale_pid_file();
  // Without the server log's tail: that may quote SQL (chart content), and this message goes
  // to chartflow's own log.
  if (auto failure = try_start_server())
    throw std::runtime_error(*failure + " (see " + server_log_file().string() + ")");
}

std::string EmbeddedPostgres::admin_psql(const std::string& sql) const {
  return pg_commands::admin_psql(
      bindir_, socket_dir_, admin_role(pg_dir_),
      credentials_for(user_.switch_user, user_.uid, user_.gid, user_.name),
      child_environment(user_.switch_user, user_.name, user_.home), pg_dir_, sql);
}

void EmbeddedPostgres::wait_until_promoted() {
  for (;;) {
    if (!postmaster_alive()) {
      const fs::path log_file = server_log_file();
      throw std::runtime_error("recovery failed; last lines of " + log_file.string() + ":\n" +
                               tail_lines(log_file, kLogLinesInErrors));
    }
    try {
      if (admin_psql("SELECT pg_is_in_recovery()") == "f") return;
    } catch (const std::runtime_error&) {
      // The server ends recovery by restarting its backends; ask again.
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void EmbeddedPostgres::create_database_if_missing() {
  const bool split = fs::exists(pg_dir_ / kAdminRoleFile);
  const auto psql = [&](const std::string& sql) { return admin_psql(sql); };
  if (split && psql(std::string("SELECT 1 FROM pg_roles WHERE rolname = '") + kRole + "'") != "1") {
    // The application's role: it owns its database and schema, nothing beyond.
    psql(std::string("CREATE ROLE ") + kRole +
         " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS");
  }
  if (psql(std::string("SELECT 1 FROM pg_database WHERE datname = '") + kDatabase + "'") != "1") {
    psql(std::string("CREATE DATABASE ") + kDatabase + " OWNER " + kRole);
  }
  if (!split)
    std::cerr << "event=embedded_postgres_superuser_role data_dir=" << data_dir_.string()
              << " hint=this cluster predates the unprivileged application role; chartflow "
                 "connects as its superuser\n";
}

void EmbeddedPostgres::stop_server() {
  const Credentials creds = credentials_for(user_.switch_user, user_.uid, user_.gid, user_.name);
  const auto env = child_environment(user_.switch_user, user_.name, user_.home);
  const CommandResult result =
      run_command({(bindir_ / "pg_ctl").string(), "stop", "-D", pgdata_.string(), "-m", "fast",
                   "-w", "-t", std::to_string(kPgCtlTimeoutSeconds), "-s"},
                  creds, pg_dir_, env);
  if (result.exit_code == 0) return;
  // Exit code 3 from status: no server running, which is what stop wanted.
  const CommandResult status = run_command(
      {(bindir_ / "pg_ctl").string(), "status", "-D", pgdata_.string()}, creds, pg_dir_, env);
  if (status.exit_code == 3) return;
  throw std::runtime_error(command_failure("pg_ctl stop", result));
}

}  // namespace chartflow::runtime
