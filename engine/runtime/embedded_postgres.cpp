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
#include <utility>
#include <vector>

namespace chartflow::runtime {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDebianPgRoot = "/usr/lib/postgresql";
constexpr const char* kBindirEnv = "CHARTFLOW_PG_BINDIR";
constexpr const char* kServerUser = "postgres";  // cluster owner when we run as root
constexpr const char* kRole = "chartflow";
// The cluster's bootstrap superuser, for creating the application role and database only: the
// application connects as kRole, which owns its database but is no superuser. Clusters made
// before this split have kRole as their bootstrap superuser (no kAdminRoleFile).
constexpr const char* kAdminRole = "chartflow_admin";
constexpr const char* kAdminRoleFile = "admin-role";
constexpr const char* kDatabase = "chartflow";
constexpr const char* kLockFile = "chartflow.lock";
constexpr const char* kConninfoFile = "chartflow.conninfo";
constexpr int kPort = 5432;
constexpr int kPgCtlTimeoutSeconds = 300;  // crash recovery after an unclean stop can be slow
// sockaddr_un.sun_path is 108 bytes including the terminating NUL.
constexpr std::size_t kMaxSocketPathLength = 107;
constexpr std::size_t kMaxReportedOutput = 4000;
constexpr int kLogLinesInErrors = 20;

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

[[noreturn]] void throw_errno(const std::string& what, int err = errno) {
  throw std::runtime_error(what + ": " + errno_text(err));
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::string read_small_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string tail_lines(const fs::path& path, int max_lines) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(std::move(line));
    if (static_cast<int>(lines.size()) > max_lines) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

// pg_ctl runs the server through /bin/sh with paths in double quotes, so these would be
// expanded or break the quoting.
void check_path_is_shell_safe(const fs::path& path) {
  for (unsigned char c : path.string()) {
    if (c == '"' || c == '$' || c == '`' || c == '\\' || c < 0x20 || c == 0x7f) {
      throw std::runtime_error("data dir " + path.string() +
                               " contains characters that pg_ctl cannot handle (quotes, $, `, "
                               "backslash or control characters); choose another --data-dir");
    }
  }
}

// Whether a path can go unquoted into pg_ctl's -o string and the libpq connection string.
bool is_plain_path(const std::string& path) {
  return std::all_of(path.begin(), path.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '-' || c == '+' || c == '@';
  });
}

std::string hex_hash(const std::string& text) {
  std::uint64_t hash = 14695981039346656037ULL;  // FNV-1a
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  static constexpr std::array<char, 17> kDigits{"0123456789abcdef"};
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) out[static_cast<std::size_t>(i)] = kDigits[hash & 0xf];
  return out;
}

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

struct ChildFailure {
  int stage;
  int err;
};
enum ChildStage : int {
  kStageSetup = 1,
  kStageSetgroups,
  kStageSetgid,
  kStageSetuid,
  kStageChdir,
  kStageExec
};

const char* stage_name(int stage) {
  switch (stage) {
    case kStageSetgroups:
      return "setgroups";
    case kStageSetgid:
      return "setgid";
    case kStageSetuid:
      return "setuid";
    case kStageChdir:
      return "chdir";
    case kStageExec:
      return "exec";
    default:
      return "setup";
  }
}

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

[[noreturn]] void child_fail(int report_fd, int stage) {
  const ChildFailure failure{stage, errno};
  [[maybe_unused]] auto ignored = ::write(report_fd, &failure, sizeof failure);
  ::_exit(127);
}

// In the forked child: drop to the cluster user, or report the failing step and exit.
void child_drop_privileges(const Credentials& creds, int report_fd) {
  if (!creds.switch_user) return;
  if (::setgroups(creds.groups.size(), creds.groups.data()) != 0) {
    child_fail(report_fd, kStageSetgroups);
  }
  if (::setgid(creds.gid) != 0) child_fail(report_fd, kStageSetgid);
  if (::setuid(creds.uid) != 0) child_fail(report_fd, kStageSetuid);
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("waitpid");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Runs argv[0] (an absolute path) with stdin from /dev/null, capturing stdout and stderr.
// fork/exec rather than posix_spawn because the child may have to change user first.
CommandResult run_command(const std::vector<std::string>& argv, const Credentials& creds,
                          const fs::path& cwd, const std::vector<std::string>& env) {
  std::vector<char*> c_argv;
  c_argv.reserve(argv.size() + 1);
  for (const auto& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);
  std::vector<char*> c_env;
  c_env.reserve(env.size() + 1);
  for (const auto& var : env) c_env.push_back(const_cast<char*>(var.c_str()));
  c_env.push_back(nullptr);
  const std::string cwd_string = cwd.string();

  std::array<int, 2> output_pipe{};
  std::array<int, 2> report_pipe{};
  if (::pipe2(output_pipe.data(), O_CLOEXEC) != 0) throw_errno("pipe2");
  Fd output_read(output_pipe[0]);
  Fd output_write(output_pipe[1]);
  if (::pipe2(report_pipe.data(), O_CLOEXEC) != 0) throw_errno("pipe2");
  Fd report_read(report_pipe[0]);
  Fd report_write(report_pipe[1]);
  Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (dev_null.get() < 0) throw_errno("open /dev/null");

  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    const int report_fd = report_write.get();
    if (::dup2(dev_null.get(), STDIN_FILENO) < 0 || ::dup2(output_write.get(), STDOUT_FILENO) < 0 ||
        ::dup2(output_write.get(), STDERR_FILENO) < 0) {
      child_fail(report_fd, kStageSetup);
    }
    // Keep descriptors we inherited from the rest of the process (sockets, the data dir lock)
    // out of the server, which outlives this call. Best effort: needs Linux 5.11.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    child_drop_privileges(creds, report_fd);
    if (::chdir(cwd_string.c_str()) != 0) child_fail(report_fd, kStageChdir);
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    child_fail(report_fd, kStageExec);
  }
  output_write.reset();
  report_write.reset();
  dev_null.reset();

  // The report pipe closes on a successful exec; anything read from it is a failure report.
  ChildFailure failure{};
  ssize_t got = 0;
  do {
    got = ::read(report_read.get(), &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);

  CommandResult result;
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t n = ::read(output_read.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buffer.data(), static_cast<std::size_t>(n));
  }
  result.exit_code = wait_for(pid);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    throw std::runtime_error("could not run " + argv[0] + ": " + stage_name(failure.stage) +
                             " failed: " + errno_text(failure.err));
  }
  return result;
}

std::string command_failure(const std::string& what, const CommandResult& result) {
  std::string output = trim(result.output);
  if (output.size() > kMaxReportedOutput) {
    output = "..." + output.substr(output.size() - kMaxReportedOutput);
  }
  return what + " failed (exit code " + std::to_string(result.exit_code) + ")" +
         (output.empty() ? std::string() : ":\n" + output);
}

// Whether the cluster user can search (traverse) `dir`, checked as that user so ACLs and
// supplementary groups count.
bool can_traverse(const Credentials& creds, const fs::path& dir) {
  const std::string path = dir.string();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    if (creds.switch_user && (::setgroups(creds.groups.size(), creds.groups.data()) != 0 ||
                              ::setgid(creds.gid) != 0 || ::setuid(creds.uid) != 0)) {
      ::_exit(2);
    }
    ::_exit(::access(path.c_str(), X_OK) == 0 ? 0 : 1);
  }
  const int code = wait_for(pid);
  if (code == 2) throw std::runtime_error("could not switch to user " + std::string(kServerUser));
  return code == 0;
}

// A dead process keeps its pid and name until reaped, by us if we are a container's init.
bool is_zombie(pid_t pid) {
  const std::string stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  const auto name_end = stat.rfind(')');
  if (name_end == std::string::npos || name_end + 2 >= stat.size()) return false;
  const char state = stat[name_end + 2];
  return state == 'Z' || state == 'X';
}

// A running process whose name is "postgres": a live postmaster rather than a recycled pid.
bool is_postgres_process(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  const std::string comm = trim(read_small_file("/proc/" + std::to_string(pid) + "/comm"));
  return (comm == "postgres" || comm == "postmaster") && !is_zombie(pid);
}

bool is_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// A killed postmaster and its backends become our children when we are a container's init (or a
// subreaper); unreaped, the postmaster's pid stays "in use" in the socket's lock file and
// PostgreSQL refuses to start. Reaps exactly those: our children, dead, named postgres, so the
// exit status of any other child (an external handler) is left to its owner.
void reap_dead_postgres_children() {
  const pid_t self = ::getpid();
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(),
                                     [](unsigned char c) { return std::isdigit(c) != 0; }))
      continue;
    const std::string stat = read_small_file(it->path() / "stat");
    const auto open = stat.find('(');
    const auto close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    const std::string comm = stat.substr(open + 1, close - open - 1);
    char state = 0;
    long parent = 0;
    std::istringstream rest(stat.substr(close + 1));
    if (!(rest >> state >> parent) || parent != self || (state != 'Z' && state != 'X')) continue;
    if (comm != "postgres" && comm != "postmaster") continue;
    int status = 0;
    ::waitpid(static_cast<pid_t>(std::stol(name)), &status, WNOHANG);
  }
}

std::optional<int> major_version_of(const std::string& name) {
  if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) return std::nullopt;
  try {
    return std::stoi(name);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool has_pg_ctl(const fs::path& bindir) { return ::access((bindir / "pg_ctl").c_str(), X_OK) == 0; }

// Debian keeps each major version's server binaries in /usr/lib/postgresql/<ver>/bin, off PATH
// (pg_config --bindir names the client directory). An existing cluster needs its own version.
fs::path find_bindir(const fs::path& pgdata) {
  if (const char* env = std::getenv(kBindirEnv); env != nullptr && *env != '\0') {
    if (!has_pg_ctl(env)) {
      throw std::runtime_error(std::string(kBindirEnv) + "=" + env + " does not contain pg_ctl");
    }
    return env;
  }
  const fs::path version_file = pgdata / "PG_VERSION";
  std::error_code ec;
  if (fs::exists(version_file, ec)) {
    const std::string version = trim(read_small_file(version_file));
    fs::path bindir = fs::path(kDebianPgRoot) / version / "bin";
    if (!has_pg_ctl(bindir)) {
      throw std::runtime_error(
          "the cluster in " + pgdata.string() + " was created by PostgreSQL " + version + " but " +
          bindir.string() + " is missing; install postgresql-" + version + " or set " + kBindirEnv);
    }
    return bindir;
  }
  std::optional<std::pair<int, fs::path>> best;
  for (fs::directory_iterator it(kDebianPgRoot, ec), end; !ec && it != end; it.increment(ec)) {
    const auto major = major_version_of(it->path().filename().string());
    if (!major || !has_pg_ctl(it->path() / "bin")) continue;
    if (!best || *major > best->first) best.emplace(*major, it->path() / "bin");
  }
  if (!best) {
    throw std::runtime_error(std::string("PostgreSQL server binaries not found under ") +
                             kDebianPgRoot + "; install the postgresql package or set " +
                             kBindirEnv);
  }
  return best->second;
}

// Gives everything under `root` to uid:gid, skipping what already belongs to it so that a
// restart over a large cluster is a walk, not a rewrite.
void chown_tree(const fs::path& root, uid_t uid, gid_t gid) {
  const auto chown_one = [&](const fs::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) throw_errno("lstat " + path.string());
    if ((st.st_uid != uid || st.st_gid != gid) && ::lchown(path.c_str(), uid, gid) != 0) {
      throw_errno("chown " + path.string());
    }
  };
  chown_one(root);
  for (const auto& entry : fs::recursive_directory_iterator(root)) chown_one(entry.path());
}

void make_dir(const fs::path& path, fs::perms mode) {
  fs::create_directories(path);
  fs::permissions(path, mode, fs::perm_options::replace);
}

// A 0700 socket directory in /tmp, owned by the cluster user. Opened with O_NOFOLLOW and
// checked through the descriptor, since anyone can create names in /tmp.
void prepare_tmp_socket_dir(const fs::path& dir, uid_t uid, gid_t gid) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir " + dir.string());
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) throw_errno("open " + dir.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("stat " + dir.string());
  if (st.st_uid != uid && st.st_uid != ::geteuid()) {
    throw std::runtime_error("socket directory " + dir.string() + " belongs to uid " +
                             std::to_string(st.st_uid) + ", not to the cluster user; remove it");
  }
  if (st.st_uid != uid && ::fchown(fd.get(), uid, gid) != 0) throw_errno("chown " + dir.string());
  if (::fchmod(fd.get(), 0700) != 0) throw_errno("chmod " + dir.string());
}

void fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) throw_errno("fsync " + dir.string());
}

Credentials credentials_for(bool switch_user, uid_t uid, gid_t gid, const std::string& name) {
  Credentials creds;
  creds.switch_user = switch_user;
  creds.uid = uid;
  creds.gid = gid;
  if (switch_user) {
    int count = 32;
    creds.groups.resize(static_cast<std::size_t>(count));
    while (::getgrouplist(name.c_str(), gid, creds.groups.data(), &count) < 0) {
      creds.groups.resize(static_cast<std::size_t>(count) + 1);
      count = static_cast<int>(creds.groups.size());
    }
    creds.groups.resize(static_cast<std::size_t>(count));
  }
  return creds;
}

// Our environment minus libpq's PG* variables (which would redirect psql or pg_ctl), with the
// cluster user's HOME when we switch to it.
std::vector<std::string> child_environment(bool switch_user, const std::string& name,
                                           const std::string& home) {
  std::vector<std::string> env;
  for (char** var = environ; var != nullptr && *var != nullptr; ++var) {
    const std::string entry(*var);
    if (entry.rfind("PG", 0) == 0) continue;
    if (switch_user && (entry.rfind("HOME=", 0) == 0 || entry.rfind("USER=", 0) == 0 ||
                        entry.rfind("LOGNAME=", 0) == 0)) {
      continue;
    }
    env.push_back(entry);
  }
  if (switch_user) {
    env.push_back("HOME=" + home);
    env.push_back("USER=" + name);
    env.push_back("LOGNAME=" + name);
  }
  return env;
}

}  // namespace

EmbeddedPostgres::EmbeddedPostgres(std::filesystem::path data_dir)
    : data_dir_(std::move(data_dir)),
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

  if (::geteuid() == 0) {
    // PostgreSQL refuses to run as root; hand the cluster to the distribution's server user.
    const passwd* pw = ::getpwnam(kServerUser);
    if (pw == nullptr) {
      throw std::runtime_error(
          "chartflow runs as root, so the embedded PostgreSQL needs the '" +
          std::string(kServerUser) +
          "' system user, which does not exist; install the postgresql package or run "
          "chartflow as an unprivileged user");
    }
    user_ = {pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir, true};
  } else {
    const passwd* pw = ::getpwuid(::geteuid());
    user_ = {::geteuid(), ::getegid(), pw != nullptr ? pw->pw_name : "",
             pw != nullptr ? pw->pw_dir : "/", false};
  }
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
  const CommandResult result =
      run_command({(bindir_ / "initdb").string(), "--pgdata=" + scratch.string(),
                   std::string("--username=") + kAdminRole, "--encoding=UTF8", "--locale=C.UTF-8",
                   "--auth-local=trust", "--auth-host=reject", "--no-instructions"},
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

std::optional<std::string> EmbeddedPostgres::try_start_server() {
  const fs::path log_file = server_log_file();
  // Command-line settings outrank postgresql.conf and ALTER SYSTEM: durability stays on and
  // the server stays off the network. The socket dir is a plain path (see
  // prepare_directories), so the -o string, which pg_ctl hands to /bin/sh, needs no quoting.
  const std::string options = "-c listen_addresses= -c port=" + std::to_string(kPort) +
                              " -c unix_socket_directories=" + socket_dir_.string() +
                              " -c unix_socket_permissions=0700 -c fsync=on"
                              " -c synchronous_commit=on -c full_page_writes=on"
                              // The LLVM JIT needs writable executable memory, which a hardened
                              // service forbids (deploy/systemd, MemoryDenyWriteExecute); chart
                              // queries are short and gain nothing from it.
                              " -c jit=off";
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

void EmbeddedPostgres::create_database_if_missing() {
  const Credentials creds = credentials_for(user_.switch_user, user_.uid, user_.gid, user_.name);
  const auto env = child_environment(user_.switch_user, user_.name, user_.home);
  const bool split = fs::exists(pg_dir_ / kAdminRoleFile);
  const std::string admin = split ? kAdminRole : kRole;
  const auto psql = [&](const std::string& sql) {
    const CommandResult result =
        run_command({(bindir_ / "psql").string(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                     "-h", socket_dir_.string(), "-p", std::to_string(kPort), "-U", admin, "-d",
                     "postgres", "-c", sql},
                    creds, pg_dir_, env);
    if (result.exit_code != 0) throw std::runtime_error(command_failure("psql", result));
    return trim(result.output);
  };
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
