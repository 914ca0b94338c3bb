#include "runtime/pg_commands.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
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
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace chartflow::runtime::pg_commands {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDebianPgRoot = "/usr/lib/postgresql";
constexpr const char* kBindirEnv = "CHARTFLOW_PG_BINDIR";
constexpr std::size_t kMaxReportedOutput = 4000;

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

// A dead process keeps its pid and name until reaped, by us if we are a container's init.
bool is_zombie(pid_t pid) {
  const std::string stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  const auto name_end = stat.rfind(')');
  if (name_end == std::string::npos || name_end + 2 >= stat.size()) return false;
  const char state = stat[name_end + 2];
  return state == 'Z' || state == 'X';
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

}  // namespace

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

[[noreturn]] void throw_errno(const std::string& what, int err) {
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
  if (code == 2)
    throw std::runtime_error("could not switch to user " + std::string("the cluster user"));
  return code == 0;
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

std::string admin_role(const fs::path& pg_dir) {
  return fs::exists(pg_dir / kAdminRoleFile) ? kAdminRole : kRole;
}

std::string admin_psql(const fs::path& bindir, const fs::path& socket_dir, const std::string& role,
                       const Credentials& creds, const std::vector<std::string>& env,
                       const fs::path& cwd, const std::string& sql) {
  const CommandResult result = run_command(
      {(bindir / "psql").string(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
       socket_dir.string(), "-p", std::to_string(kPort), "-U", role, "-d", "postgres", "-c", sql},
      creds, cwd, env);
  if (result.exit_code != 0) throw std::runtime_error(command_failure("psql", result));
  return trim(result.output);
}

ClusterUser cluster_user() {
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
    return {pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir, true};
  }
  const passwd* pw = ::getpwuid(::geteuid());
  return {::geteuid(), ::getegid(), pw != nullptr ? pw->pw_name : "",
          pw != nullptr ? pw->pw_dir : "/", false};
}

ClusterUser cluster_user_for(const fs::path& existing) {
  struct stat st {};
  if (::geteuid() == 0 && ::stat(existing.c_str(), &st) == 0 && st.st_uid != 0) {
    if (const passwd* pw = ::getpwuid(st.st_uid))
      return {pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir, true};
  }
  return cluster_user();
}

}  // namespace chartflow::runtime::pg_commands
