#include "engine/util/http_post.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace chartflow::util {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr std::size_t kMaxResponseBytes = std::size_t{64} * 1024;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int remaining_ms(SteadyClock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on fd; "" when ready, else an error text.
std::string wait_for(int fd, short events, SteadyClock::time_point deadline) {
  while (true) {
    int left = remaining_ms(deadline);
    if (left == 0) return "timeout";
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, left);
    if (n > 0) return {};
    if (n == 0) return "timeout";
    if (errno != EINTR) return fmt::format("poll: {}", std::strerror(errno));
  }
}

std::string connect_to(const HttpUrl& url, SteadyClock::time_point deadline, int& out_fd) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = ::getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &result);
  if (rc != 0) return fmt::format("resolve: {}", ::gai_strerror(rc));
  std::string last_error = "connect: no address";
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = fmt::format("socket: {}", std::strerror(errno));
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      out_fd = fd;
      ::freeaddrinfo(result);
      return {};
    }
    if (errno == EINPROGRESS) {
      std::string waited = wait_for(fd, POLLOUT, deadline);
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      if (waited.empty() && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 &&
          so_error == 0) {
        out_fd = fd;
        ::freeaddrinfo(result);
        return {};
      }
      last_error = waited.empty() ? fmt::format("connect: {}", std::strerror(so_error))
                                  : fmt::format("connect: {}", waited);
    } else {
      last_error = fmt::format("connect: {}", std::strerror(errno));
    }
    ::close(fd);
  }
  ::freeaddrinfo(result);
  return last_error;
}

std::string send_all(int fd, std::string_view data, SteadyClock::time_point deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      std::string waited = wait_for(fd, POLLOUT, deadline);
      if (!waited.empty()) return fmt::format("send: {}", waited);
      continue;
    }
    return fmt::format("send: {}", std::strerror(errno));
  }
  return {};
}

bool header_value_ok(std::string_view v) {
  for (char c : v) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Extracts the status and body from a complete (or EOF-terminated) response.
void parse_response(const std::string& raw, HttpResult& result) {
  // "HTTP/1.1 200 OK"
  if (raw.compare(0, 5, "HTTP/") != 0) {
    result.error = "malformed response";
    return;
  }
  auto sp = raw.find(' ');
  if (sp == std::string::npos || sp + 4 > raw.size()) {
    result.error = "malformed status line";
    return;
  }
  int status = 0;
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    if (std::isdigit(static_cast<unsigned char>(raw[i])) == 0) {
      result.error = "malformed status line";
      return;
    }
    status = status * 10 + (raw[i] - '0');
  }
  result.status = status;
  auto header_end = raw.find("\r\n\r\n");
  if (header_end != std::string::npos) result.body = raw.substr(header_end + 4);
}

// True once the buffer holds the headers and Content-Length bytes of body (if announced).
bool response_complete(const std::string& raw) {
  auto header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) return false;
  std::string headers = lower(std::string_view(raw).substr(0, header_end));
  auto cl = headers.find("\r\ncontent-length:");
  if (cl == std::string::npos) return false;  // read until the server closes
  std::size_t pos = cl + 17;
  while (pos < headers.size() && headers[pos] == ' ') ++pos;
  std::size_t length = 0;
  while (pos < headers.size() && std::isdigit(static_cast<unsigned char>(headers[pos])) != 0) {
    length = length * 10 + static_cast<std::size_t>(headers[pos] - '0');
    if (length > kMaxResponseBytes) return true;
    ++pos;
  }
  return raw.size() >= header_end + 4 + length;
}

}  // namespace

std::optional<HttpUrl> parse_http_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(url[i])) != kScheme[i]) return std::nullopt;
  }
  url.remove_prefix(kScheme.size());
  auto slash = url.find_first_of("/?");
  std::string_view authority = url.substr(0, slash);
  HttpUrl out;
  if (slash != std::string_view::npos) {
    out.target = std::string(url.substr(slash));
    if (out.target.front() == '?') out.target.insert(0, "/");
  }
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  if (authority.front() == '[') {  // [::1]:8080
    auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return std::nullopt;
      out.port = std::string(authority.substr(1));
    }
  } else {
    auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
  }
  if (out.host.empty() || out.port.empty() || out.port.size() > 5) return std::nullopt;
  for (char c : out.port) {
    if (std::isdigit(static_cast<unsigned char>(c)) == 0) return std::nullopt;
  }
  for (char c : out.target) {
    if (c == ' ' || c == '\r' || c == '\n') return std::nullopt;
  }
  return out;
}

HttpResult http_post(std::string_view url, std::string_view body, const HttpHeaders& headers,
                     std::chrono::milliseconds timeout) {
  HttpResult result;
  auto parsed = parse_http_url(url);
  if (!parsed) {
    result.error = "unsupported URL (only http://host[:port]/path)";
    return result;
  }
  const auto deadline = SteadyClock::now() + timeout;
  int raw_fd = -1;
  if (std::string err = connect_to(*parsed, deadline, raw_fd); !err.empty()) {
    result.error = std::move(err);
    return result;
  }
  Fd fd(raw_fd);

  std::string host_header = parsed->host.find(':') != std::string::npos
                                ? fmt::format("[{}]", parsed->host)
                                : parsed->host;
  if (parsed->port != "80") host_header += ":" + parsed->port;
  std::string request =
      fmt::format("POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
                  parsed->target, host_header, body.size());
  bool has_content_type = false;
  for (const auto& [name, value] : headers) {
    if (!header_value_ok(name) || !header_value_ok(value)) {
      result.error = "invalid header";
      return result;
    }
    if (lower(name) == "content-type") has_content_type = true;
    request += fmt::format("{}: {}\r\n", name, value);
  }
  if (!has_content_type) request += "Content-Type: application/json\r\n";
  request += "\r\n";

  if (std::string err = send_all(fd.get(), request, deadline); !err.empty()) {
    result.error = std::move(err);
    return result;
  }
  if (std::string err = send_all(fd.get(), body, deadline); !err.empty()) {
    result.error = std::move(err);
    return result;
  }

  std::string raw;
  char buffer[8192];
  while (raw.size() < kMaxResponseBytes + 8192) {
    ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      raw.append(buffer, static_cast<std::size_t>(n));
      if (response_complete(raw)) break;
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      std::string waited = wait_for(fd.get(), POLLIN, deadline);
      if (!waited.empty()) {
        // A status line already read is still an answer; otherwise report the timeout.
        if (raw.find("\r\n\r\n") != std::string::npos) break;
        result.error = fmt::format("recv: {}", waited);
        return result;
      }
      continue;
    }
    result.error = fmt::format("recv: {}", std::strerror(errno));
    return result;
  }
  if (raw.empty()) {
    result.error = "connection closed without a response";
    return result;
  }
  parse_response(raw, result);
  if (result.body.size() > kMaxResponseBytes) result.body.resize(kMaxResponseBytes);
  return result;
}

}  // namespace chartflow::util
