// Test support: runs a shell command and captures its output (stdout and stderr together) and
// exit code. For tests that check files with an external tool (promtool).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace chartflow::testing {

struct CommandResult {
  int exit_code = -1;  // -1: the command could not be started
  std::string output;
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) r.output += buf;
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Where promtool is, or "" (the test then fails: CI installs it, deploy/install_deps.sh --test).
inline std::string promtool() {
  auto r = run_command("command -v promtool");
  if (r.exit_code != 0) return "";
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == ' '))
    r.output.pop_back();
  return r.output;
}

inline constexpr const char* kNoPromtool =
    "promtool not found: it comes with Debian's `prometheus` package, which "
    "deploy/install_deps.sh --test installs";

}  // namespace chartflow::testing
