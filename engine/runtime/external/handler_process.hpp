// One running handler program, spoken to over pipes: a request line on its stdin, a response
// line on its stdout, log lines on its stderr. The program runs in its own process group, under
// RLIMIT_AS, with a clean environment. Owned by one thread at a time (the pool hands it out);
// the destructor kills the whole group and reaps the process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "engine/handler.hpp"
#include "runtime/external/external_spec.hpp"

namespace chartflow::runtime::external {

using SteadyTime = std::chrono::steady_clock::time_point;
using LogSink = std::function<void(LogLevel, std::string_view, const Json&)>;

struct InvokeResult {
  enum class Kind { kResponse, kTimeout, kExited, kGarbage, kTooLarge };
  Kind kind = Kind::kResponse;
  Json response;       // kResponse: the parsed response object
  std::string detail;  // otherwise: what went wrong, for the step's error (no handler output)
};

class HandlerProcess {
 public:
  // Starts the program; throws std::runtime_error when it cannot.
  static std::unique_ptr<HandlerProcess> spawn(const ExternalSpec& spec);
  ~HandlerProcess();
  HandlerProcess(const HandlerProcess&) = delete;
  HandlerProcess& operator=(const HandlerProcess&) = delete;

  // Sends one request (a JSON object with "id", no newline) and waits for the response line
  // with that id until `deadline`. Log lines the program writes meanwhile go to `log`. Anything
  // but a response leaves the process dead (killed if need be): never reuse it then.
  InvokeResult invoke(const std::string& request, const std::string& id, SteadyTime deadline,
                      std::size_t max_output, const LogSink& log);

  pid_t pid() const { return pid_; }
  // Bytes it wrote past its last response: a protocol breach that would poison the next call.
  std::size_t stray_output() const { return out_buf_.size(); }
  int invocations() const { return invocations_; }
  // False once the process is known to be gone; polls for an exit that happened while idle.
  bool alive();

 private:
  HandlerProcess() = default;
  void kill_group() const;
  std::string reap(bool wait);  // "exited with status N" / "killed by signal N (NAME)"
  void read_logs(const LogSink& log, bool final_flush);

  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  bool exited_ = false;
  int invocations_ = 0;
  int log_lines_ = 0;  // this invocation's, for the per-invocation cap
  std::string out_buf_, err_buf_;
};

}  // namespace chartflow::runtime::external
