#include "runtime/drop_folder.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>  // renameat2
#include <cstring>
#include <map>
#include <tuple>

#include "engine/util/hash.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {
namespace {

namespace fs = std::filesystem;

constexpr const char* kArchive = "archive";
constexpr const char* kError = "error";
constexpr const char* kNotRegular =
    "not a regular file (links, fifos, sockets and devices are refused; a link is moved here, "
    "never followed)";
constexpr int kPollMs = 500;
constexpr auto kRescanEvery = std::chrono::seconds(5);
// A file written in place (not moved in) may still be growing: the safety-net rescan leaves
// files this fresh to their IN_CLOSE_WRITE.
constexpr auto kSettled = std::chrono::seconds(2);
// Candidates name, name.1, ... tried for a free place in archive/ or error/.
constexpr int kMaxSuffix = 10'000;

bool ignored_name(const std::string& name) {
  auto ends = [&](const char* s) {
    const std::string suf(s);
    return name.size() >= suf.size() &&
           name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  // Hidden and partial files are what writers create before moving the finished file in.
  return name.empty() || name[0] == '.' || ends(".tmp") || ends(".part") || ends("~");
}

bool is_special_dir(const std::string& name) { return name == kArchive || name == kError; }

// A descriptor closed at scope end.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

// A directory `name` directly under `parent`, never through a link.
Fd open_dir(int parent, const std::string& name) {
  return Fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// The same, created (0750) when missing.
Fd open_or_make_dir(int parent, const std::string& name) {
  Fd fd = open_dir(parent, name);
  if (fd.ok() || errno != ENOENT) return fd;
  if (::mkdirat(parent, name.c_str(), 0750) != 0 && errno != EEXIST) return Fd();
  return open_dir(parent, name);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

struct FileRead {
  std::string data;
  std::string error;  // set: the file goes to error/
  bool gone = false;  // it left before we read it: nothing to do
};

// Reads the entry from a descriptor opened without following links (the type checked on that
// very descriptor, so a link swapped in after a check is never followed), within `limit`.
FileRead read_entry(int parent, const std::string& name, std::size_t limit) {
  struct stat st {};
  // Before opening: a device is not even opened (opening some has side effects).
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? FileRead{"", "", true} : FileRead{"", errno_text("cannot stat")};
  if (!S_ISREG(st.st_mode)) return {"", kNotRegular};
  Fd fd(::openat(parent, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.ok()) {
    if (errno == ENOENT) return {"", "", true};
    if (errno == ELOOP || errno == ENXIO || errno == EWOULDBLOCK) return {"", kNotRegular};
    return {"", errno_text("cannot open")};
  }
  if (::fstat(fd.get(), &st) != 0) return {"", errno_text("cannot stat")};
  if (!S_ISREG(st.st_mode)) return {"", kNotRegular};
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > limit) return {"", drop_too_large(size, limit)};
  FileRead out;
  out.data.resize(size + 1);
  std::size_t have = 0;
  // Read to the end: a file still growing past the limit is refused, not cut.
  for (;;) {
    if (have == out.data.size()) {
      if (have > limit) return {"", drop_too_large(have, limit)};
      out.data.resize(std::min(limit + 1, have * 2 + 4096));
    }
    const ssize_t n = ::read(fd.get(), out.data.data() + have, out.data.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {"", errno_text("cannot read")};
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  if (have > limit) return {"", drop_too_large(have, limit)};
  out.data.resize(have);
  return out;
}

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool exists_at(int dir, const std::string& name) {
  struct stat st {};
  return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

// rename(2) that never replaces what is at `to` (renameat2 RENAME_NOREPLACE, or a check where
// the file system lacks it); moves the entry itself, a link included, never a link's target.
int rename_noreplace(int from_dir, const std::string& from, int to_dir, const std::string& to) {
  if (::renameat2(from_dir, from.c_str(), to_dir, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  if (exists_at(to_dir, to)) {
    errno = EEXIST;
    return -1;
  }
  return ::renameat(from_dir, from.c_str(), to_dir, to.c_str());
}

std::string rel_name(const DropEntry& e) {
  return e.subfolder.empty() ? e.name : e.subfolder + "/" + e.name;
}

}  // namespace

std::string DropFolder::file_id(const std::string& relative_name) {
  return util::sha256_hex(relative_name).substr(0, 12);
}

DropFolder::DropFolder(Engine& engine, std::filesystem::path dir, DropLimits limits,
                       IntakeFn chart_intake, SignedTypeFn requires_signature)
    : engine_(engine), chart_intake_(std::move(chart_intake)), dir_(std::move(dir)) {
  policy_.limits = limits;
  policy_.reserved = &engine_.reserved_event_types();
  policy_.requires_signature = std::move(requires_signature);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  dir_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0)
    throw std::runtime_error("drop folder " + dir_.string() +
                             " is not a usable directory: " + std::strerror(errno));
  for (const char* area : {kArchive, kError})
    if (!open_or_make_dir(dir_fd_, area).ok())
      Log::error("drop_folder_unusable",
                 {{"area", area}, {"error", errno_text("not a directory of its own")}});
}

DropFolder::~DropFolder() {
  stop();
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

bool DropFolder::move_entry(const DropEntry& entry, const char* area,
                            const std::string* note) const {
  auto fail = [&](const std::string& why) {
    Log::error("drop_move_failed",
               {{"file_id", file_id(rel_name(entry))}, {"to", area}, {"error", why}});
    return false;
  };
  Fd from_sub;
  int from = dir_fd_;
  if (!entry.subfolder.empty()) {
    from_sub = open_dir(dir_fd_, entry.subfolder);
    if (!from_sub.ok()) return fail(errno_text("subfolder"));
    from = from_sub.get();
  }
  Fd area_fd = open_or_make_dir(dir_fd_, area);
  if (!area_fd.ok()) return fail(errno_text(area));
  Fd to_sub;
  int to = area_fd.get();
  if (!entry.subfolder.empty()) {
    to_sub = open_or_make_dir(area_fd.get(), entry.subfolder);
    if (!to_sub.ok()) return fail(errno_text("subfolder"));
    to = to_sub.get();
  }
  for (int i = 0; i < kMaxSuffix; ++i) {
    const std::string candidate = i == 0 ? entry.name : entry.name + "." + std::to_string(i);
    std::string note_name;
    if (note) {
      note_name = candidate + ".error.txt";
      Fd nfd(::openat(to, note_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0640));
      if (!nfd.ok() && errno == EEXIST) continue;
      // A name too long for the note still lets the file move.
      if (!nfd.ok()) note_name.clear();
      if (nfd.ok()) write_all(nfd.get(), *note + "\n");
    }
    if (rename_noreplace(from, entry.name, to, candidate) == 0) return true;
    const int err = errno;
    if (!note_name.empty()) ::unlinkat(to, note_name.c_str(), 0);
    if (err == EEXIST) continue;
    if (err == ENOENT) return false;  // gone meanwhile
    errno = err;
    return fail(errno_text("rename"));
  }
  return fail("no free name");
}

void DropFolder::reject(const DropEntry& entry, const std::string& why) const {
  move_entry(entry, kError, &why);
  Log::warn("drop_rejected", {{"file_id", file_id(rel_name(entry))}, {"error", why}});
}

void DropFolder::archive(const DropEntry& entry) const { move_entry(entry, kArchive, nullptr); }

DropFolder::Outcome DropFolder::process(const fs::path& file) {
  // The entry's own names, taken lexically: nothing is resolved, no link followed.
  const fs::path rel = file.lexically_relative(dir_);
  std::vector<std::string> parts;
  for (const auto& p : rel) parts.push_back(p.string());
  DropEntry entry;
  if (parts.size() == 1) {
    entry.name = parts[0];
  } else if (parts.size() == 2 && valid_drop_type(parts[0]) && !is_special_dir(parts[0])) {
    entry.subfolder = parts[0];
    entry.name = parts[1];
  }
  if (entry.name.empty() || entry.name == "." || entry.name == ".." || ignored_name(entry.name) ||
      (entry.subfolder.empty() && is_special_dir(entry.name)))
    return Outcome::kLeft;
  return process(entry);
}

DropFolder::Outcome DropFolder::process(const DropEntry& entry) {
  const std::string id = file_id(rel_name(entry));
  Fd sub;
  int parent = dir_fd_;
  if (!entry.subfolder.empty()) {
    sub = open_dir(dir_fd_, entry.subfolder);
    // A linked subfolder is refused as an entry of its own (at the top); its files stay put.
    if (!sub.ok()) return Outcome::kLeft;
    parent = sub.get();
  }
  const FileRead read = read_entry(parent, entry.name, drop_size_limit(entry, policy_.limits));
  if (read.gone) return Outcome::kLeft;
  if (!read.error.empty()) {
    reject(entry, read.error);
    return Outcome::kRejected;
  }
  DropDecision decision = classify_drop_file(entry, read.data, policy_);
  if (decision.rejection) {
    reject(entry, *decision.rejection);
    return Outcome::kRejected;
  }
  const std::string sha = util::sha256_hex(read.data);
  // Names in no stored key either: the path's hash stands for it.
  const std::string dedup_key = "drop:" + util::sha256_hex(rel_name(entry)) + "@" + sha;
  Json fields = {{"file_id", id}};
  try {
    bool duplicate = false;
    if (decision.kind == DropKind::kEvent) {
      store::EventInput ev;
      ev.type = entry.subfolder;
      ev.source = "drop";
      ev.body = std::move(decision.body);
      ev.dedup_key = dedup_key;
      try {
        const auto r = engine_.ingest_external(std::move(ev));
        duplicate = r.duplicate;
        fields["type"] = entry.subfolder;
        fields["event_id"] = r.event_id;
      } catch (const EventRefused& e) {
        reject(entry, e.what());
        return Outcome::kRejected;
      }
    } else if (decision.kind == DropKind::kChart) {
      if (!chart_intake_) {
        reject(entry, "this server has no chart intake for the drop folder's top level");
        return Outcome::kRejected;
      }
      try {
        const auto r = chart_intake_(IntakeRequest{read.data, "drop-folder", "drop", nullptr});
        duplicate = r.duplicate;
        if (r.summary.contains("chart_id")) fields["chart_id"] = r.summary["chart_id"];
        if (r.event.event_id != 0) fields["event_id"] = r.event.event_id;
      } catch (const IntakeRejected& e) {
        reject(entry, e.message);
        return Outcome::kRejected;
      }
    } else {
      // The engine's own event for a file it stored: where the file now lies, for the workflow
      // that processes it (the operator's own folder).
      store::EventInput ev;
      ev.type = kObjectCreatedEvent;
      ev.source = "drop";
      ev.body = {{"bucket", "drop"},
                 {"key", rel_name(entry)},
                 {"size", read.data.size()},
                 {"sha256", sha},
                 {"path", (dir_ / kArchive / rel_name(entry)).string()}};
      ev.dedup_key = dedup_key;
      const auto r = engine_.ingest(std::move(ev));
      duplicate = r.duplicate;
      fields["event_id"] = r.event_id;
    }
    // Only now, with the event committed, may the file leave the folder.
    archive(entry);
    fields["duplicate"] = duplicate;
    Log::info("drop_accepted", fields);
    return duplicate ? Outcome::kDuplicate : Outcome::kAccepted;
  } catch (const std::exception& e) {
    // The database is away: leave the file for the next scan.
    Log::warn("drop_deferred", {{"file_id", id}, {"error", e.what()}});
    return Outcome::kLeft;
  }
}

int DropFolder::scan(bool settled_only) {
  int n = 0;
  std::error_code ec;
  std::vector<DropEntry> entries;
  for (const auto& top : fs::directory_iterator(dir_, ec)) {
    const std::string name = top.path().filename().string();
    if (ignored_name(name) || is_special_dir(name)) continue;
    // symlink_status: a link to a folder is an entry (refused), never a folder to descend into.
    const auto st = top.symlink_status(ec);
    if (!ec && fs::is_directory(st)) {
      if (!valid_drop_type(name)) continue;
      for (const auto& f : fs::directory_iterator(top.path(), ec)) {
        const std::string fname = f.path().filename().string();
        if (!ignored_name(fname)) entries.push_back({name, fname});
      }
    } else {
      entries.push_back({"", name});
    }
  }
  std::sort(entries.begin(), entries.end(), [](const DropEntry& a, const DropEntry& b) {
    return std::tie(a.subfolder, a.name) < std::tie(b.subfolder, b.name);
  });
  for (const auto& e : entries) {
    if (settled_only) {
      struct stat st {};
      if (::fstatat(dir_fd_, rel_name(e).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          std::chrono::system_clock::now() - std::chrono::system_clock::from_time_t(st.st_mtime) <
              kSettled)
        continue;
    }
    if (process(e) != Outcome::kLeft) ++n;
  }
  return n;
}

void DropFolder::start() {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) throw std::runtime_error(std::string("inotify: ") + std::strerror(errno));
  thread_ = std::thread([this] { loop(); });
}

void DropFolder::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (inotify_fd_ >= 0) close(inotify_fd_);
  inotify_fd_ = -1;
}

void DropFolder::loop() {
  constexpr std::uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DONT_FOLLOW;
  std::map<int, std::string> watches;  // wd -> subfolder ("" for the folder itself)
  auto watch = [&](const std::string& sub) {
    const fs::path d = sub.empty() ? dir_ : dir_ / sub;
    // IN_ONLYDIR with IN_DONT_FOLLOW: a link to a folder elsewhere is never watched.
    const int wd = inotify_add_watch(inotify_fd_, d.c_str(), kMask | IN_ONLYDIR);
    if (wd >= 0) watches[wd] = sub;
  };
  auto watch_subfolders = [&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string name = e.path().filename().string();
      if (is_special_dir(name) || !valid_drop_type(name) || !fs::is_directory(e.symlink_status(ec)))
        continue;
      bool known = false;
      for (const auto& [wd, s] : watches) known = known || s == name;
      if (!known) watch(name);
    }
  };
  watch("");
  watch_subfolders();
  // Files that arrived while no process watched.
  scan();
  auto next_rescan = std::chrono::steady_clock::now() + kRescanEvery;
  alignas(inotify_event) char buf[16384];
  while (!stopping_) {
    pollfd p{inotify_fd_, POLLIN, 0};
    if (poll(&p, 1, kPollMs) > 0) {
      const ssize_t len = read(inotify_fd_, buf, sizeof buf);
      for (ssize_t off = 0; off < len;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        if (ev->len == 0 || !watches.count(ev->wd)) continue;
        const std::string name = ev->name;
        const std::string sub = watches[ev->wd];
        if (ignored_name(name) || (sub.empty() && is_special_dir(name))) continue;
        if (ev->mask & IN_ISDIR) {
          if (sub.empty() && valid_drop_type(name)) {
            watch_subfolders();
            // Files moved in before the watch existed would otherwise wait for the rescan.
            scan();
          }
          continue;
        }
        // IN_CREATE alone: the writer is still writing; its IN_CLOSE_WRITE follows. A link or a
        // fifo made in place has no IN_CLOSE_WRITE: the rescan refuses it.
        if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) process(DropEntry{sub, name});
      }
    }
    if (std::chrono::steady_clock::now() >= next_rescan) {
      next_rescan = std::chrono::steady_clock::now() + kRescanEvery;
      // The safety net: events lost to an overflowing queue, subfolders made before their watch.
      watch_subfolders();
      scan(/*settled_only=*/true);
    }
  }
}

}  // namespace chartflow::runtime
