// The drop folder: files moved into a directory become events. A `.json` file at the top is a
// FHIR Bundle, accepted exactly like a chart upload (chart id = its Patient); any other file at
// the top is an `object.created` event; a file in a subfolder named like an event type (e.g.
// lab.result/) is an event of that type whose body is the file's JSON object. Accepted files
// move to archive/, rejected ones to error/ next to a `<name>.error.txt` naming the problem.
//
// Crash safety: a file is moved only after its event committed. A crash in between leaves it in
// place; on restart it is accepted again and deduplicated (charts by content hash, other events
// by the key "<path>@<sha256>"), then moved. Files present at start are picked up; inotify
// (IN_CLOSE_WRITE, IN_MOVED_TO) wakes the watcher, and a rescan every few seconds is the safety
// net. One thread; start()/stop() once. Run one process per folder.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "engine/module.hpp"
#include "runtime/engine.hpp"

namespace chartflow::runtime {

inline constexpr const char* kObjectCreatedEvent = "object.created";
inline constexpr std::size_t kDefaultDropMaxBytes = std::size_t{32} * 1024 * 1024;

class DropFolder {
 public:
  // `chart_intake` receives the .json files at the folder's top level (none: they are rejected).
  using IntakeFn = std::function<IntakeResult(const IntakeRequest&)>;
  DropFolder(Engine& engine, std::filesystem::path dir,
             std::size_t max_bytes = kDefaultDropMaxBytes, IntakeFn chart_intake = nullptr);
  ~DropFolder();

  void start();
  void stop();
  // Processes every file now in the folder (settled_only: not those written in the last two
  // seconds); returns how many were accepted or rejected.
  int scan(bool settled_only = false);

  // What happened to one file (for logs and tests).
  enum class Outcome { kAccepted, kDuplicate, kRejected, kLeft };
  Outcome process(const std::filesystem::path& file);

 private:
  void loop();
  void reject(const std::filesystem::path& file, const std::string& why);
  void archive(const std::filesystem::path& file);

  Engine& engine_;
  IntakeFn chart_intake_;
  std::filesystem::path dir_;
  std::size_t max_bytes_;
  std::atomic<bool> stopping_{false};
  int inotify_fd_ = -1;
  std::thread thread_;
};

}  // namespace chartflow::runtime
