#include "handlers/discharge/bill_channels.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include "engine/util/http_post.hpp"
#include "handlers/common/config_file.hpp"
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
    if (channel.type == "folder") {
      channel.dir = expand_env(fhir::string_member(c, "dir"));
      if (channel.dir.empty()) continue;
    } else if (channel.type == "webhook") {
      channel.url = expand_env(fhir::string_member(c, "url"));
      if (channel.url.empty()) continue;
      if (!util::parse_http_url(channel.url)) {
        throw std::invalid_argument(fmt::format(
            "bill delivery channel '{}': url must be http://host[:port]/path", channel.name));
      }
    } else {
      throw std::invalid_argument(
          fmt::format("bill delivery channel '{}': type must be folder or webhook", channel.name));
    }
    out.channels.push_back(std::move(channel));
  }
  return out;
}

std::string write_bill_file(const std::filesystem::path& dir, const std::string& chart_id,
                            const std::string& text) {
  static std::atomic<unsigned> counter{0};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fmt::format("create directory: {}", ec.message());
  const std::filesystem::path target = dir / (chart_id + "-invoice.txt");
  const std::filesystem::path temp =
      dir / fmt::format(".{}-invoice.txt.{}.{}.tmp", chart_id, ::getpid(), counter++);
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fmt::format("open: {}", std::strerror(errno));
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string err = fmt::format("write: {}", std::strerror(errno));
      ::close(fd);
      ::unlink(temp.c_str());
      return err;
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    std::string err = fmt::format("fsync: {}", std::strerror(errno));
    ::close(fd);
    ::unlink(temp.c_str());
    return err;
  }
  ::close(fd);
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    std::string err = fmt::format("rename: {}", std::strerror(errno));
    ::unlink(temp.c_str());
    return err;
  }
  return {};
}

}  // namespace chartflow::handlers::discharge
