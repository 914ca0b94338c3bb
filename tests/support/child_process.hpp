// Test support: a child process (a real chartflow binary) with its output in log files.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"

extern char** environ;

namespace chartflow::testing {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A port nobody listens on right now (bound and released; good enough on a test machine).
inline unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    ADD_FAILURE() << "cannot find a free port: " << std::strerror(errno);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A child process (posix_spawn) with stdout (and stderr, unless given its own file) in a log
// file; killed and reaped at destruction if still running.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log,
               const std::optional<std::filesystem::path>& err_log = std::nullopt)
      : log_(log), err_log_(err_log.value_or(log)) {
    std::filesystem::create_directories(log.parent_path());
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // The child must not pick up a database URL from our environment.
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e)
      if (std::string(*e).rfind("CHARTFLOW_DATABASE_URL=", 0) != 0) env.push_back(*e);
    env.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err_log)
      posix_spawn_file_actions_addopen(&fa, 2, err_log->c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                       0644);
    else
      posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    const int rc = posix_spawn(&pid_, args[0], &fa, &attr, args.data(), env.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      ADD_FAILURE() << "cannot spawn " << argv[0] << ": " << std::strerror(rc);
      pid_ = -1;
    }
  }
  ~ChildProcess() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::seconds(10));
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0 || exit_code_) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return r == 0;
  }
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  // The exit code (128 + signal when killed), or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    wait_until([&] { return !running(); }, timeout);
    return exit_code_;
  }
  std::string log() const {
    std::string out = read_file(log_);
    if (err_log_ != log_) out += "\n[stderr]\n" + read_file(err_log_);
    return out;
  }
  std::string err_log() const { return read_file(err_log_); }

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
  std::filesystem::path err_log_;
  std::optional<int> exit_code_;
};

// The port a `chartflow serve --listen HOST:0` child bound, from its "serving" log line (0 when it
// exited or did not log one within `timeout`). Servers under test bind port 0: a port chosen
// beforehand (free_port) may be taken by another test before the server binds it.
inline unsigned short wait_listening(ChildProcess& p, std::chrono::milliseconds timeout) {
  unsigned short port = 0;
  wait_until(
      [&] {
        std::istringstream lines(p.log());
        for (std::string line; std::getline(lines, line);) {
          if (line.find("\"message\":\"serving\"") == std::string::npos) continue;
          const auto at = line.find("\"port\":");
          if (at == std::string::npos) continue;
          port = static_cast<unsigned short>(std::stoi(line.substr(at + 7)));
          return true;
        }
        return !p.running();
      },
      timeout);
  return port;
}

// Waits until the server process answers /healthz on `port`; false when it exited first or did
// not answer within `timeout`.
inline bool wait_healthy(ChildProcess& p, unsigned short port, std::chrono::milliseconds timeout) {
  return wait_until(
             [&] {
               if (!p.running()) return true;  // the caller reports the exit
               try {
                 return request("GET", "127.0.0.1", port, "/healthz", "", {},
                                std::chrono::seconds(1))
                            .status == 200;
               } catch (const std::exception&) {
                 return false;
               }
             },
             timeout) &&
         p.running();
}

}  // namespace chartflow::testing
