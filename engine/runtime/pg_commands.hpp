#pragma once

// The embedded cluster's process plumbing: running PostgreSQL's programs as the cluster's user,
// and the file-system chores around them. Internal to engine/runtime.

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace chartflow::runtime::pg_commands {

// The embedded cluster's layout under <data_dir>/pg and the names in it.
inline constexpr const char* kServerUser = "postgres";  // cluster owner when we run as root
inline constexpr const char* kRole = "chartflow";
// The cluster's bootstrap superuser, for creating the application role and database (and for
// backups): the application connects as kRole, which owns its database but is no superuser.
// Clusters made before this split have kRole as their bootstrap superuser (no kAdminRoleFile).
inline constexpr const char* kAdminRole = "chartflow_admin";
inline constexpr const char* kAdminRoleFile = "admin-role";
inline constexpr const char* kDatabase = "chartflow";
inline constexpr const char* kConninfoFile = "chartflow.conninfo";
inline constexpr int kPort = 5432;

struct ClusterUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home;
  bool switch_user = false;  // true when we are root and must drop to `name`
};
// Who owns and runs the cluster: ourselves, or the `postgres` user when we are root (PostgreSQL
// refuses to run as root).
ClusterUser cluster_user();
// As root, the owner of `existing` when that is not root (a packaged install's chartflow user,
// whose cluster root may back up or restore but must not take over); else cluster_user().
ClusterUser cluster_user_for(const std::filesystem::path& existing);

// Who runs initdb, pg_ctl and psql. Everything here is computed before fork(), because the
// child may only make async-signal-safe calls.
struct Credentials {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout and stderr interleaved
};

// Runs argv[0] (an absolute path) as `creds` with stdin from /dev/null, capturing stdout and
// stderr.
CommandResult run_command(const std::vector<std::string>& argv, const Credentials& creds,
                          const std::filesystem::path& cwd, const std::vector<std::string>& env);
// "<what> failed (exit code N):\n<the output's tail>".
std::string command_failure(const std::string& what, const CommandResult& result);
Credentials credentials_for(bool switch_user, uid_t uid, gid_t gid, const std::string& name);
// Our environment minus libpq's PG* variables, with the cluster user's HOME when we switch.
std::vector<std::string> child_environment(bool switch_user, const std::string& name,
                                           const std::string& home);
// Whether the cluster user can search `dir` (ACLs and supplementary groups count).
bool can_traverse(const Credentials& creds, const std::filesystem::path& dir);

// The role for administration (creating the database, backups) of the cluster under `pg_dir`.
std::string admin_role(const std::filesystem::path& pg_dir);
// One statement as `role` in database postgres over the cluster's socket; the rows unaligned
// (fields split by '|'), trimmed. Throws with psql's output when it fails.
std::string admin_psql(const std::filesystem::path& bindir, const std::filesystem::path& socket_dir,
                       const std::string& role, const Credentials& creds,
                       const std::vector<std::string>& env, const std::filesystem::path& cwd,
                       const std::string& sql);

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string errno_text(int err);
[[noreturn]] void throw_errno(const std::string& what, int err = errno);
std::string trim(std::string s);
std::string read_small_file(const std::filesystem::path& path);
std::string tail_lines(const std::filesystem::path& path, int max_lines);
// Refuses characters pg_ctl's /bin/sh command line cannot carry inside double quotes.
void check_path_is_shell_safe(const std::filesystem::path& path);
// Whether a path can go unquoted into pg_ctl's -o string and a libpq connection string.
bool is_plain_path(const std::string& path);
std::string hex_hash(const std::string& text);

// A live postmaster (named postgres, not a zombie) rather than a recycled pid.
bool is_postgres_process(pid_t pid);
bool is_alive(pid_t pid);
void reap_dead_postgres_children();
// The server binaries for the cluster in `pgdata` (its PG_VERSION), or the newest installed.
std::filesystem::path find_bindir(const std::filesystem::path& pgdata);

void chown_tree(const std::filesystem::path& root, uid_t uid, gid_t gid);
void make_dir(const std::filesystem::path& path, std::filesystem::perms mode);
void prepare_tmp_socket_dir(const std::filesystem::path& dir, uid_t uid, gid_t gid);
void fsync_dir(const std::filesystem::path& dir);

}  // namespace chartflow::runtime::pg_commands
