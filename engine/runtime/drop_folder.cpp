#include "runtime/drop_folder.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "engine/util/hash.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {
namespace {

namespace fs = std::filesystem;

constexpr const char* kArchive = "archive";
constexpr const char* kError = "error";
constexpr int kPollMs = 500;
constexpr auto kRescanEvery = std::chrono::seconds(5);
// A file written in place (not moved in) may still be growing: the safety-net rescan leaves
// files this fresh to their IN_CLOSE_WRITE.
constexpr auto kSettled = std::chrono::seconds(2);
const std::regex kEventType("^[A-Za-z0-9._-]{1,200}$");

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

// A free path for `target`: the name itself, else name.1, name.2, ...
fs::path free_path(const fs::path& target) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(target, ec))) return target;
  for (int i = 1;; ++i) {
    fs::path p = target;
    p += "." + std::to_string(i);
    if (!fs::exists(fs::symlink_status(p, ec))) return p;
  }
}

struct FileRead {
  std::string data;
  std::string error;
};

FileRead read_regular(const fs::path& file, std::size_t max_bytes) {
  std::error_code ec;
  const auto st = fs::symlink_status(file, ec);
  if (ec) return {"", "cannot stat: " + ec.message()};
  if (!fs::is_regular_file(st)) return {"", "not a regular file (links and devices are refused)"};
  const auto size = fs::file_size(file, ec);
  if (ec) return {"", "cannot stat: " + ec.message()};
  if (size > max_bytes)
    return {"", "the file has " + std::to_string(size) + " bytes, more than the limit of " +
                    std::to_string(max_bytes)};
  std::ifstream in(file, std::ios::binary);
  if (!in) return {"", std::string("cannot read: ") + std::strerror(errno)};
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return {"", std::string("cannot read: ") + std::strerror(errno)};
  return {ss.str(), ""};
}

}  // namespace

DropFolder::DropFolder(Engine& engine, std::filesystem::path dir, std::size_t max_bytes,
                       IntakeFn chart_intake)
    : engine_(engine),
      chart_intake_(std::move(chart_intake)),
      dir_(std::move(dir)),
      max_bytes_(max_bytes) {
  std::error_code ec;
  fs::create_directories(dir_ / kArchive, ec);
  fs::create_directories(dir_ / kError, ec);
  if (ec || !fs::is_directory(dir_))
    throw std::runtime_error("drop folder " + dir_.string() +
                             " is not a usable directory: " + ec.message());
}

DropFolder::~DropFolder() { stop(); }

void DropFolder::reject(const fs::path& file, const std::string& why) {
  const fs::path rel = fs::relative(file, dir_);
  const fs::path target = free_path(dir_ / kError / rel);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  {
    std::ofstream note(target.string() + ".error.txt");
    note << why << "\n";
  }
  fs::rename(file, target, ec);
  Log::warn("drop_rejected", {{"file", rel.string()}, {"error", why}});
}

void DropFolder::archive(const fs::path& file) {
  const fs::path rel = fs::relative(file, dir_);
  const fs::path target = free_path(dir_ / kArchive / rel);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  fs::rename(file, target, ec);
  if (ec) Log::warn("drop_archive_failed", {{"file", rel.string()}, {"error", ec.message()}});
}

DropFolder::Outcome DropFolder::process(const fs::path& file) {
  const fs::path rel = fs::relative(file, dir_);
  auto read = read_regular(file, max_bytes_);
  if (!read.error.empty()) {
    reject(file, read.error);
    return Outcome::kRejected;
  }
  const std::string sha = util::sha256_hex(read.data);
  try {
    bool duplicate = false;
    if (rel.has_parent_path()) {
      // A subfolder names the event type; the file is its JSON body.
      const std::string type = rel.parent_path().string();
      Json body;
      try {
        body = Json::parse(read.data);
      } catch (const Json::parse_error& e) {
        reject(file, "not valid JSON: byte " + std::to_string(e.byte));
        return Outcome::kRejected;
      }
      if (!body.is_object()) {
        reject(file, "the event body must be a JSON object");
        return Outcome::kRejected;
      }
      store::EventInput ev;
      ev.type = type;
      ev.source = "drop";
      ev.body = std::move(body);
      ev.dedup_key = rel.string() + "@" + sha;
      duplicate = engine_.ingest(std::move(ev)).duplicate;
    } else if (file.extension() == ".json") {
      if (!chart_intake_) {
        reject(file, "this server has no chart intake for the drop folder's top level");
        return Outcome::kRejected;
      }
      try {
        duplicate =
            chart_intake_(IntakeRequest{read.data, "drop-folder", "drop", nullptr}).duplicate;
      } catch (const IntakeRejected& e) {
        reject(file, e.message);
        return Outcome::kRejected;
      }
    } else {
      store::EventInput ev;
      ev.type = kObjectCreatedEvent;
      ev.source = "drop";
      ev.body = {{"bucket", "drop"},
                 {"key", rel.string()},
                 {"size", read.data.size()},
                 {"sha256", sha},
                 {"path", (dir_ / kArchive / rel).string()}};
      ev.dedup_key = rel.string() + "@" + sha;
      duplicate = engine_.ingest(std::move(ev)).duplicate;
    }
    // Only now, with the event committed, may the file leave the folder.
    archive(file);
    Log::info("drop_accepted", {{"file", rel.string()}, {"duplicate", duplicate}});
    return duplicate ? Outcome::kDuplicate : Outcome::kAccepted;
  } catch (const std::exception& e) {
    // The database is away: leave the file for the next scan.
    Log::warn("drop_deferred", {{"file", rel.string()}, {"error", e.what()}});
    return Outcome::kLeft;
  }
}

int DropFolder::scan(bool settled_only) {
  int n = 0;
  std::error_code ec;
  const auto fresh_after = fs::file_time_type::clock::now() - kSettled;
  std::vector<fs::path> files;
  for (const auto& top : fs::directory_iterator(dir_, ec)) {
    const std::string name = top.path().filename().string();
    if (ignored_name(name) || is_special_dir(name)) continue;
    if (top.is_directory(ec) && !top.is_symlink(ec)) {
      if (!std::regex_match(name, kEventType)) continue;
      for (const auto& f : fs::directory_iterator(top.path(), ec))
        if (!ignored_name(f.path().filename().string())) files.push_back(f.path());
    } else {
      files.push_back(top.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (settled_only && fs::last_write_time(f, ec) > fresh_after && !ec) continue;
    if (process(f) != Outcome::kLeft) ++n;
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
  constexpr std::uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE;
  std::map<int, fs::path> watches;
  auto watch = [&](const fs::path& d) {
    const int wd = inotify_add_watch(inotify_fd_, d.c_str(), kMask);
    if (wd >= 0) watches[wd] = d;
  };
  watch(dir_);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_directory(ec) && !is_special_dir(e.path().filename().string())) watch(e.path());
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
        const fs::path path = watches[ev->wd] / name;
        if (ignored_name(name) || (watches[ev->wd] == dir_ && is_special_dir(name))) continue;
        if (ev->mask & IN_ISDIR) {
          if (watches[ev->wd] == dir_ && std::regex_match(name, kEventType)) {
            watch(path);
            // Files moved in before the watch existed would otherwise wait for the rescan.
            scan();
          }
          continue;
        }
        // IN_CREATE alone: the writer is still writing; its IN_CLOSE_WRITE follows.
        if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) process(path);
      }
    }
    if (std::chrono::steady_clock::now() >= next_rescan) {
      next_rescan = std::chrono::steady_clock::now() + kRescanEvery;
      // The safety net: events lost to an overflowing queue, subfolders made before their watch.
      for (const auto& e : fs::directory_iterator(dir_, ec))
        if (e.is_directory(ec) && !is_special_dir(e.path().filename().string())) {
          bool known = false;
          for (const auto& [wd, d] : watches) known = known || d == e.path();
          if (!known) watch(e.path());
        }
      scan(/*settled_only=*/true);
    }
  }
}

}  // namespace chartflow::runtime
