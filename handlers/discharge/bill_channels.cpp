#include "handlers/discharge/bill_channels.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include "handlers/common/config_file.hpp"
#include "handlers/common/outbound_settings.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::discharge {

BillDeliverySettings BillDeliverySettings::from_json(const Json& settings) {
  BillDeliverySettings out;
  if (settings.is_null()) return out;
  const Json* list = &settings;
  if (settings.is_object()) list = fhir::member(settings, "channels");
  if (list == nullptr) return out;
  if (!list->is_array()) throw std::invalid_argument("bill delivery: 'channels' must be a list");
  std::set<std::string> names;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& c = (*list)[i];
    if (!c.is_object()) {
      throw std::invalid_argument(fmt::format("bill delivery channel #{} is not a mapping", i + 1));
    }
    BillChannel channel;
    channel.type = fhir::string_member(c, "type");
    channel.name = fhir::string_member(c, "name");
    if (channel.name.empty()) channel.name = channel.type;
    if (channel.name.empty() || channel.name.size() > 100) {
      throw std::invalid_argument(fmt::format("bill delivery channel #{} needs a name", i + 1));
    }
    if (!names.insert(channel.name).second) {
      throw std::invalid_argument(
          fmt::format("bill delivery channel '{}' is defined twice", channel.name));
    }
    for (const auto& [key, value] : c.items()) {
      if (key != "name" && key != "type" && key != "dir" && key != "url" &&
          key != "allow_insecure" && key != "tls" && key != "auth") {
        throw std::invalid_argument(
            fmt::format("channels.{}.{}: unknown setting", channel.name, key));
      }
    }
    if (channel.type == "folder") {
      channel.dir = expand_env(fhir::string_member(c, "dir"));
      if (channel.dir.empty()) continue;
    } else if (channel.type == "webhook") {
      channel.url = expand_env(fhir::string_member(c, "url"));
      if (channel.url.empty()) continue;
      channel.http = outbound_options(&c, channel.url, fmt::format("channels.{}", channel.name),
                                      channel.http.timeout, out.warnings);
    } else {
      throw std::invalid_argument(
          fmt::format("bill delivery channel '{}': type must be folder or webhook", channel.name));
    }
    out.channels.push_back(std::move(channel));
  }
  return out;
}

namespace {

// Missing folders of `dir` made 0700 (a bill folder is the patient data's own); existing ones
// are left as the operator set them up.
std::string make_private_dirs(const std::filesystem::path& dir) {
  std::filesystem::path p;
  for (const auto& part : dir) {
    p /= part;
    if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
      return fmt::format("create directory: {}", std::strerror(errno));
  }
  return {};
}

std::string random_hex(std::size_t bytes) {
  unsigned char buf[16];
  if (bytes > sizeof buf) bytes = sizeof buf;
  std::size_t have = 0;
  while (have < bytes) {
    const ssize_t n = ::getrandom(buf + have, bytes - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};
    have += static_cast<std::size_t>(n);
  }
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) out += fmt::format("{:02x}", buf[i]);
  return out;
}

}  // namespace

std::string write_bill_file(const std::filesystem::path& dir, const std::string& chart_id,
                            const std::string& text) {
  if (chart_id.empty() || chart_id.front() == '.' || chart_id.find('/') != std::string::npos ||
      chart_id.find('\0') != std::string::npos)
    return "the chart id is not usable as a file name";
  if (auto err = make_private_dirs(dir); !err.empty()) return err;
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return fmt::format("open directory: {}", std::strerror(errno));
  const std::string target = chart_id + "-invoice.txt";
  // Beside the target (so rename(2) is atomic), under a name no one can guess, created new
  // (O_EXCL) and never through a link (O_NOFOLLOW): a link planted there cannot redirect it.
  std::string temp;
  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    const std::string nonce = random_hex(12);
    if (nonce.empty()) break;
    temp = fmt::format(".{}.{}.tmp", target, nonce);
    fd = ::openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    std::string err = fmt::format("open: {}", std::strerror(errno));
    ::close(dir_fd);
    return err;
  }
  auto fail = [&](const char* what) {
    std::string err = fmt::format("{}: {}", what, std::strerror(errno));
    if (fd >= 0) ::close(fd);
    ::unlinkat(dir_fd, temp.c_str(), 0);
    ::close(dir_fd);
    return err;
  };
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    fd = -1;
    return fail("close");
  }
  fd = -1;
  // rename(2) replaces whatever is at the target, a planted link included, without following it.
  if (::renameat(dir_fd, temp.c_str(), dir_fd, target.c_str()) != 0) return fail("rename");
  ::fsync(dir_fd);  // the rename itself survives a crash
  ::close(dir_fd);
  return {};
}

}  // namespace chartflow::handlers::discharge
