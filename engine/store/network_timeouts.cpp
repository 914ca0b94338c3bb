#include "store/network_timeouts.hpp"

#include <utility>
#include <vector>

namespace chartflow::store {
namespace {

// Seconds, except tcp_user_timeout (milliseconds). A connection attempt to a frozen host gives
// up after 5 s (libpq then tries the next host of a multi-host URL); an idle connection to a
// vanished host is noticed within 10 + 3 x 5 s; unacknowledged data is abandoned after 20 s.
const std::vector<std::pair<std::string, std::string>> kDefaults = {
    {"connect_timeout", "5"},     {"keepalives", "1"},       {"keepalives_idle", "10"},
    {"keepalives_interval", "5"}, {"keepalives_count", "3"}, {"tcp_user_timeout", "20000"},
};

bool is_url(const std::string& dsn) {
  return dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0;
}

// Whether the parameter is set: "name=" at the start of a key=value pair or URL parameter.
bool has_param(const std::string& dsn, const std::string& name, bool url) {
  const std::string needle = name + "=";
  for (std::size_t pos = dsn.find(needle); pos != std::string::npos;
       pos = dsn.find(needle, pos + 1)) {
    if (pos == 0) return true;
    const char before = dsn[pos - 1];
    if (url ? (before == '?' || before == '&') : (before == ' ' || before == '\t')) return true;
  }
  return false;
}

}  // namespace

std::string with_network_timeouts(const std::string& dsn) {
  const bool url = is_url(dsn);
  std::string out = dsn;
  for (const auto& [name, value] : kDefaults) {
    if (has_param(out, name, url)) continue;
    if (url) {
      out += out.find('?') == std::string::npos ? '?' : '&';
    } else if (!out.empty()) {
      out += ' ';
    }
    out += name + "=" + value;
  }
  return out;
}

}  // namespace chartflow::store
