// What an external handler mapping in a workflow file means once checked: the program to start,
// its limits and its pool settings. Values only; built once per distinct mapping and shared
// read-only between threads.
//
//   handler: { exec: [prog, args...], timeout: 3s, memory: 128Mi, concurrency: 10,
//              env: { KEY: value }, min_warm: 1, max_invocations: 1000, max_output: 1Mi,
//              name: label }
//   handler: { runtime: python3, entry: module.function, ... same keys ... }
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::runtime::external {

inline constexpr Millis kDefaultTimeout{30'000};
inline constexpr std::uint64_t kDefaultMemory = 512ULL << 20;
inline constexpr int kDefaultConcurrency = 1000;
inline constexpr int kDefaultMinWarm = 1;
inline constexpr int kDefaultMaxInvocations = 1000;
inline constexpr std::size_t kDefaultMaxOutput = 1U << 20;

// An account a handler process switches to before it runs the program.
struct RunAs {
  std::string name;
  unsigned uid = 0;
  unsigned gid = 0;
};

// Resolves `name` (a user name) for RunAs; throws std::runtime_error when the user does not exist
// or this process is not root (only root can switch users).
RunAs resolve_run_as(const std::string& name);

struct ExternalSpec {
  std::string name;  // metric label and log field: `name`, the python entry, or the program
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=value, the whole environment of the process
  std::filesystem::path cwd;     // the workflows folder, so relative paths mean the same everywhere
  Millis timeout = kDefaultTimeout;
  std::uint64_t memory_bytes = kDefaultMemory;
  int concurrency = kDefaultConcurrency;         // processes of this handler at once, per chartflow
  int min_warm = kDefaultMinWarm;                // idle processes kept started ahead of need
  int max_invocations = kDefaultMaxInvocations;  // a process is replaced after this many
  std::size_t max_output = kDefaultMaxOutput;    // bytes of one response line
  // The unprivileged user the process runs as (set when chartflow runs as root), else none.
  std::optional<RunAs> run_as;

  // Pool key: two steps with equal identities share processes.
  std::string identity() const;
};

// Where python3 handlers come from: the interpreter and the adapter source (embedded).
struct PythonRuntime {
  std::string interpreter = "python3";
  std::string adapter_source;
};

// Parses and checks a handler mapping; throws std::invalid_argument naming the problem.
ExternalSpec parse_external_spec(const Json& config, const std::filesystem::path& workflows_dir,
                                 const PythonRuntime& python);

// "128Mi", "1G", "4096" -> bytes; nullopt when not a size.
std::optional<std::uint64_t> parse_size(const std::string& text);

}  // namespace chartflow::runtime::external
