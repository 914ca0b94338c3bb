#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "runtime/embedded_postgres_supervisor.hpp"
#include "runtime/pg_commands.hpp"

namespace chartflow::runtime {

// start() found the data dir locked by another live chartflow process.
class DataDirInUse : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs a private PostgreSQL cluster under <data_dir>/pg for `chartflow serve` when no database
// URL is given, so a single binary plus a data directory is a complete installation.
//
// Layout: <data_dir>/chartflow.lock (our flock, holds our pid), <data_dir>/pg/data (PGDATA),
// <data_dir>/pg/log/postgres.log, <data_dir>/pg/run (Unix socket; a 0700 directory under
// /tmp when that path would be too long for a socket). The server listens on that socket only
// and trusts local connections, so only the cluster's owner (and root) can reach it. Durability
// settings are production ones and are passed on the command line, where neither
// postgresql.conf nor ALTER SYSTEM can turn them off.
//
// As root the cluster belongs to and runs as the `postgres` system user; otherwise it runs as
// the current user. The server is a separate process started with pg_ctl, so it survives a
// crash of ours; the next start() finds it orphaned (we hold the lock) and restarts it.
//
// supervise() restarts the server when it dies (crash recovery included) and says when it
// cannot, for /healthz.
//
// Lifetime: the lock is taken by the first start() and held until destruction, across stop()
// and later start() calls. The destructor stops the server. Call start(), supervise() and stop()
// from one thread, typically main() during startup and shutdown; unhealthy_reason() and
// restarts() may be called from any thread at any time.
// What the cluster does beyond serving, set for the life of one EmbeddedPostgres.
struct EmbeddedSettings {
  // Continuous archiving: every finished WAL segment is copied into this directory (PostgreSQL's
  // basic_archive module: written to a temporary name, fsynced, renamed), and a segment is
  // finished at least every kArchiveTimeoutSeconds while anything is written, which bounds what
  // a point-in-time restore can lose. Created for the cluster's user if missing.
  std::optional<std::filesystem::path> wal_archive;
  // Recovery on start (chartflow restore): replay WAL from this archive on the backup's timeline,
  // up to `recovery_target` (a timestamp with its zone) or to the archive's end, then promote;
  // nothing is archived meanwhile. start() returns once the server accepts connections;
  // wait_until_promoted() waits for the replay.
  std::optional<std::filesystem::path> recover_from;
  std::optional<std::string> recovery_target;
};
inline constexpr int kArchiveTimeoutSeconds = 60;

class EmbeddedPostgres {
 public:
  explicit EmbeddedPostgres(std::filesystem::path data_dir, EmbeddedSettings settings = {});
  ~EmbeddedPostgres();  // stop(); errors are reported on stderr, never thrown

  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  // Takes an exclusive flock on <data_dir>/chartflow.lock and writes our pid into it; another
  // holder makes this throw DataDirInUse("data dir <dir> is in use by another chartflow
  // process (pid N)"). Runs initdb on first use, stops a server orphaned by a crashed
  // predecessor, starts postgres (pg_ctl -w) and creates database "chartflow" if missing.
  // Returns a libpq connection string such as
  // "host=<socket dir> port=5432 dbname=chartflow user=chartflow". Calling it again while
  // running returns the same string. Throws std::runtime_error with the failing command's
  // output when anything goes wrong; the server is left stopped in that case.
  std::string start();

  // The connection string a running holder of `data_dir` wrote at start (see start()), so a
  // second process (`chartflow tokens`, `chartflow audit`) can reach the cluster it serves;
  // nullopt when there is none.
  static std::optional<std::string> running_conninfo(const std::filesystem::path& data_dir);

  // Watches the running server from a background thread until stop(): when the postmaster is
  // gone it starts it again with the same settings (see SupervisorSettings). Call after start().
  void supervise(SupervisorSettings settings = {});
  std::optional<std::string> unhealthy_reason() const { return supervisor_.unhealthy_reason(); }
  int restarts() const { return supervisor_.restarts(); }  // by supervise(), since construction

  // After a start() in recovery: waits until the server has replayed the archive and promoted;
  // throws with the server log's tail when recovery fails (a target beyond the archive's end).
  void wait_until_promoted();

  // Ends supervision, then pg_ctl stop -m fast. Idempotent; a no-op if start() did not succeed.
  void stop();

 private:
  void lock_data_dir();
  void prepare_directories();
  void prepare_archive_dir(std::filesystem::path& dir) const;
  void init_cluster_if_needed();
  void stop_orphaned_server();
  std::filesystem::path server_log_file() const;
  std::optional<std::string> try_start_server();  // the failure, if any
  void start_server();
  void remove_stale_pid_file();
  // The supervisor's side, on its thread. Everything they read is set by start() and left
  // alone until stop() has joined the supervisor.
  bool postmaster_alive() const;
  void restart_server();
  void create_database_if_missing();
  void stop_server();

  std::string admin_psql(const std::string& sql) const;  // one statement as the admin role
  std::string server_options() const;

  std::filesystem::path data_dir_;  // absolute once start() has run
  EmbeddedSettings settings_;
  std::filesystem::path pg_dir_;
  std::filesystem::path pgdata_;
  std::filesystem::path socket_dir_;
  std::filesystem::path bindir_;
  pg_commands::ClusterUser user_;
  int lock_fd_ = -1;
  bool running_ = false;
  bool socket_dir_in_tmp_ = false;
  std::string conninfo_;
  PostgresSupervisor supervisor_;  // last: its thread uses the members above
};

}  // namespace chartflow::runtime
