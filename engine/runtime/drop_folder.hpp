// The drop folder: files moved into a directory become events. A `.json` file at the top is a
// FHIR Bundle, accepted exactly like a chart upload (chart id = its Patient); any other file at
// the top is an `object.created` event; a file in a subfolder named like an event type (e.g.
// lab.result/) is an event of that type whose body is the file's JSON object. Accepted files
// move to archive/, rejected ones to error/ next to a `<name>.error.txt` naming the problem.
// What a file becomes, and the limits it is held to, is decided by runtime/drop_intake.hpp.
//
// Trust: a subfolder's event enters through Engine::ingest_external, so a reserved type (one
// chartflow emits itself) is refused; a type that must be signed over HTTP (requires_signature)
// is refused too. Only regular files are read: links (to files or folders), fifos, sockets and
// devices go to error/ untouched, the link itself moved, never its target. Every path written is
// the folder's own path joined with the entry's own names (openat/renameat on descriptors with
// O_NOFOLLOW), so nothing outside the folder is ever created, moved or written. Logs carry a hash
// of the file's name (`file_id`, 12 hex of its sha256) and the ids it became, never the name:
// chart file names hold patient names.
//
// Crash safety: a file is moved only after its event committed. A crash in between leaves it in
// place; on restart it is accepted again and deduplicated (charts by content hash, other events
// by the key "drop:<sha256 of the path>@<sha256 of the content>"), then moved. Files present at
// start are picked up; inotify (IN_CLOSE_WRITE, IN_MOVED_TO) wakes the watcher, and a rescan
// every few seconds is the safety net. One thread; start()/stop() once. Run one process per
// folder.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "engine/module.hpp"
#include "runtime/drop_intake.hpp"
#include "runtime/engine.hpp"

namespace chartflow::runtime {

inline constexpr std::size_t kDefaultDropMaxBytes = core::kDefaultUploadBytes;

class DropFolder {
 public:
  // `chart_intake` receives the .json files at the folder's top level (none: they are rejected).
  using IntakeFn = std::function<IntakeResult(const IntakeRequest&)>;
  // `requires_signature`: the types whose webhook needs an HMAC signature (serve binds it to the
  // webhook secrets); a file of such a type is refused.
  DropFolder(Engine& engine, std::filesystem::path dir, DropLimits limits = {},
             IntakeFn chart_intake = nullptr, SignedTypeFn requires_signature = nullptr);
  ~DropFolder();
  DropFolder(const DropFolder&) = delete;
  DropFolder& operator=(const DropFolder&) = delete;

  void start();
  void stop();
  // Processes every file now in the folder (settled_only: not those written in the last two
  // seconds); returns how many were accepted or rejected.
  int scan(bool settled_only = false);

  // What happened to one file (for logs and tests). `file` is the folder's path joined with the
  // entry's names (<dir>/<name> or <dir>/<type>/<name>); anything else is left alone.
  enum class Outcome { kAccepted, kDuplicate, kRejected, kLeft };
  Outcome process(const std::filesystem::path& file);

  // The hash that stands for a file's name in logs: 12 hex of sha256("<type>/<name>" or "<name>").
  static std::string file_id(const std::string& relative_name);

 private:
  Outcome process(const DropEntry& entry);
  void loop();
  void reject(const DropEntry& entry, const std::string& why) const;
  void archive(const DropEntry& entry) const;
  // Moves the entry itself (never a link's target) into <area>/[<type>/] under a free name, with
  // `note` beside it as <name>.error.txt when given; false (and logged) when it cannot.
  bool move_entry(const DropEntry& entry, const char* area, const std::string* note) const;

  Engine& engine_;
  IntakeFn chart_intake_;
  std::filesystem::path dir_;
  int dir_fd_ = -1;
  DropPolicy policy_;
  std::atomic<bool> stopping_{false};
  int inotify_fd_ = -1;
  std::thread thread_;
};

}  // namespace chartflow::runtime
