// A minimal blocking HTTP/1.1 POST client over POSIX sockets, for the few outbound calls handlers
// make (insurer endpoints, bill webhooks). Plain http:// only; one connection per call
// ("Connection: close"); bounded by a total timeout. Handlers run on worker threads that may
// block, so a synchronous call is fine. Thread-safe: no shared state.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chartflow::util {

struct HttpUrl {
  std::string host;
  std::string port = "80";
  std::string target = "/";  // path and query
};

// Parses "http://host[:port][/path]"; nullopt for anything else (https, userinfo, bad port).
std::optional<HttpUrl> parse_http_url(std::string_view url);

struct HttpResult {
  int status = 0;     // 0 when no HTTP response was read
  std::string error;  // transport error ("connect: Connection refused", "timeout"), else ""
  std::string body;   // response body (capped at 64 KiB)
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

HttpResult http_post(std::string_view url, std::string_view body, const HttpHeaders& headers,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace chartflow::util
