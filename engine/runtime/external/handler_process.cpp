#include "runtime/external/handler_process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace chartflow::runtime::external {
namespace {

constexpr std::size_t kMaxLogLine = 8192;
constexpr int kMaxLogLines = 1000;  // per invocation; a chatty loop must not flood log_record
constexpr Millis kExitGrace{100};

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

LogLevel level_of(const std::string& name) {
  if (name == "debug" || name == "DEBUG" || name == "trace") return LogLevel::kDebug;
  if (name == "warning" || name == "warn" || name == "WARNING" || name == "WARN")
    return LogLevel::kWarning;
  if (name == "error" || name == "critical" || name == "fatal" || name == "ERROR" ||
      name == "CRITICAL")
    return LogLevel::kError;
  return LogLevel::kInfo;
}

// A stderr line: a JSON object with level and message (other keys become fields), or plain
// text at info level.
void emit_log_line(std::string_view line, const LogSink& log) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) return;
  if (line.size() > kMaxLogLine) line = line.substr(0, kMaxLogLine);
  if (line.front() == '{') {
    Json j = Json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("message") && j.at("message").is_string()) {
      const LogLevel level = level_of(j.value("level", std::string("info")));
      const std::string message = j.at("message").get<std::string>();
      j.erase("message");
      j.erase("level");
      // Marked, so views that must not show what a handler printed (an operator's view of a
      // chart run) can tell these lines from the engine's own.
      j["stream"] = "stderr";
      log(level, message, j);
      return;
    }
  }
  log(LogLevel::kInfo, line, Json{{"stream", "stderr"}});
}

// Per handler process: the largest file it may write, and its CPU time over its whole (warm)
// life; a process past it is killed (SIGXCPU) and the pool starts a fresh one.
constexpr rlim_t kHandlerMaxFileBytes = rlim_t{64} * 1024 * 1024;
constexpr rlim_t kHandlerMaxCpuSeconds = 600;
// Processes (and threads) of the handler user, counted across its handlers: no fork bomb.
constexpr rlim_t kHandlerMaxProcesses = 256;

int millis_until(SteadyTime deadline) {
  const auto left =
      std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left + 1, 0, 60'000));
}

}  // namespace

std::unique_ptr<HandlerProcess> HandlerProcess::spawn(const ExternalSpec& spec) {
  // A dead handler must not kill chartflow through SIGPIPE; writes then fail with EPIPE instead.
  static const bool kIgnoreSigpipe = [] {
    std::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)kIgnoreSigpipe;

  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed in a threaded program.
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::string cwd = spec.cwd.string();
  const rlimit mem{spec.memory_bytes, spec.memory_bytes};
  const rlimit file_size{kHandlerMaxFileBytes, kHandlerMaxFileBytes};
  const rlimit cpu{kHandlerMaxCpuSeconds, kHandlerMaxCpuSeconds};
  const rlimit procs{kHandlerMaxProcesses, kHandlerMaxProcesses};
  const std::optional<RunAs>& run_as = spec.run_as;

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("cannot create pipes: ") + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    // A chartflow killed with -9 takes its handlers along. The signal follows the thread that
    // forked, and only engine-lifetime threads (workers, the pool's warmer) start processes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    // Nothing of the engine's (database sockets, listeners) leaks into the handler.
    close_range(3, ~0U, CLOSE_RANGE_UNSHARE);
    int step = 0;
    // No setuid program it runs gains privileges; files and CPU time are bounded as memory is.
    // Under root it becomes the handler user first (and then may start only so many processes),
    // so a handler never holds chartflow's privileges.
    const bool limited =
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && setrlimit(RLIMIT_AS, &mem) == 0 &&
        setrlimit(RLIMIT_FSIZE, &file_size) == 0 && setrlimit(RLIMIT_CPU, &cpu) == 0;
    const bool switched = !run_as || (setrlimit(RLIMIT_NPROC, &procs) == 0 &&
                                      setgroups(0, nullptr) == 0 && setgid(run_as->gid) == 0 &&
                                      setuid(run_as->uid) == 0 && getuid() == run_as->uid);
    if (limited && switched && (cwd.empty() || chdir(cwd.c_str()) == 0)) {
      step = 1;
      execvpe(argv[0], argv.data(), envp.data());
    }
    // Reported through stderr (a step log) and exit status 127, as a shell would.
    const char* what = step == 0 ? "chartflow: cannot set limits, switch to the handler user or "
                                   "enter the workflows folder\n"
                                 : "chartflow: cannot execute the handler program\n";
    (void)!write(2, what, std::strlen(what));
    _exit(127);
  }
  setpgid(pid, pid);  // also in the parent, so a kill right after spawn reaches the group
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  std::unique_ptr<HandlerProcess> p(new HandlerProcess());
  p->pid_ = pid;
  p->stdin_ = in[1];
  p->stdout_ = out[0];
  p->stderr_ = err[0];
  set_nonblocking(p->stdin_);
  set_nonblocking(p->stdout_);
  set_nonblocking(p->stderr_);
  return p;
}

HandlerProcess::~HandlerProcess() {
  if (!exited_) {
    kill_group();
    reap(true);
  }
  close_fd(stdin_);
  close_fd(stdout_);
  close_fd(stderr_);
}

void HandlerProcess::kill_group() const {
  if (pid_ > 0 && !exited_) ::kill(-pid_, SIGKILL);
}

std::string HandlerProcess::reap(bool wait) {
  if (exited_) return "exited";
  int status = 0;
  pid_t r = 0;
  const auto give_up = std::chrono::steady_clock::now() + kExitGrace;
  while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && wait) {
    if (std::chrono::steady_clock::now() > give_up) {
      kill_group();
      r = waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (r == 0) return "";
  exited_ = true;
  // Children it left behind go with it.
  ::kill(-pid_, SIGKILL);
  if (r < 0) return "exited";
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "exited";
}

bool HandlerProcess::alive() {
  if (!exited_) reap(false);
  return !exited_;
}

void HandlerProcess::read_logs(const LogSink& log, bool final_flush) {
  char buf[16384];
  while (stderr_ >= 0) {
    const ssize_t n = ::read(stderr_, buf, sizeof buf);
    if (n > 0) {
      err_buf_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) close_fd(stderr_);
    break;
  }
  std::size_t start = 0;
  for (std::size_t nl; (nl = err_buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (++log_lines_ <= kMaxLogLines)
      emit_log_line(std::string_view(err_buf_).substr(start, nl - start), log);
  }
  err_buf_.erase(0, start);
  if (err_buf_.size() > kMaxLogLine || (final_flush && !err_buf_.empty())) {
    if (++log_lines_ <= kMaxLogLines) emit_log_line(err_buf_, log);
    err_buf_.clear();
  }
  if (final_flush && log_lines_ > kMaxLogLines)
    log(LogLevel::kWarning, "handler log lines over the per-invocation cap were dropped",
        {{"dropped", log_lines_ - kMaxLogLines}});
}

InvokeResult HandlerProcess::invoke(const std::string& request, const std::string& id,
                                    SteadyTime deadline, std::size_t max_output,
                                    const LogSink& log) {
  ++invocations_;
  log_lines_ = 0;
  const std::string line = request + "\n";
  std::size_t written = 0;
  auto fail = [&](InvokeResult::Kind kind, std::string detail) {
    kill_group();
    reap(true);
    read_logs(log, true);
    return InvokeResult{kind, Json(), std::move(detail)};
  };
  while (true) {
    if (const auto nl = out_buf_.find('\n'); nl != std::string::npos) {
      if (nl > max_output) break;  // reported below as too large
      Json response = Json::parse(std::string_view(out_buf_).substr(0, nl), nullptr, false);
      out_buf_.erase(0, nl + 1);
      read_logs(log, true);
      if (!response.is_object() || response.value("id", Json()) != id)
        return fail(InvokeResult::Kind::kGarbage,
                    "handler wrote a line that is not a JSON response with this request's id "
                    "(log to stderr; responses are one JSON object per line on stdout)");
      return InvokeResult{InvokeResult::Kind::kResponse, std::move(response), ""};
    }
    if (out_buf_.size() > max_output) break;
    if (std::chrono::steady_clock::now() >= deadline) return fail(InvokeResult::Kind::kTimeout, "");
    pollfd fds[3] = {{stdout_, POLLIN, 0},
                     {stderr_, POLLIN, 0},
                     {written < line.size() ? stdin_ : -1, POLLOUT, 0}};
    if (::poll(fds, 3, millis_until(deadline)) < 0 && errno != EINTR)
      return fail(InvokeResult::Kind::kExited, std::string("poll failed: ") + strerror(errno));
    if (fds[2].revents != 0) {
      const ssize_t n = ::write(stdin_, line.data() + written, line.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      // EPIPE: it is gone; its stdout reaches EOF next and says how.
      if (n < 0 && errno != EAGAIN && errno != EINTR) written = line.size();
    }
    if (fds[1].revents != 0) read_logs(log, false);
    if (fds[0].revents != 0) {
      char buf[65536];
      const ssize_t n = ::read(stdout_, buf, sizeof buf);
      if (n > 0) out_buf_.append(buf, static_cast<std::size_t>(n));
      if (n == 0) {
        std::string how = reap(true);
        read_logs(log, true);
        return InvokeResult{InvokeResult::Kind::kExited, Json(),
                            "handler process " + (how.empty() ? "closed its stdout" : how)};
      }
    }
  }
  return fail(InvokeResult::Kind::kTooLarge,
              fmt::format("handler output exceeds the max_output limit of {} bytes", max_output));
}

}  // namespace chartflow::runtime::external
