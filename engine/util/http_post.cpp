#include "engine/util/http_post.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fmt/format.h>

#include <cctype>
#include <mutex>

#include "engine/util/access_token.hpp"

namespace chartflow::util {
namespace {

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

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && lower(s.substr(0, prefix.size())) == prefix;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct BodySink {
  HttpResult* result;
  std::size_t cap;
};

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  std::string& body = sink->result->body;
  const std::size_t n = size * count;
  const std::size_t room = sink->cap - std::min(sink->cap, body.size());
  if (n > room) sink->result->truncated = true;
  body.append(data, std::min(n, room));
  return n;  // the rest is read and dropped
}

bool tls_code(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return true;
    default:
      return false;
  }
}

// The error text of a failed transfer: its class, then libcurl's detail (never content).
std::string describe(CURLcode code, const char* errbuf, bool tls) {
  std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(code);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
  if (code == CURLE_PEER_FAILED_VERIFICATION) {
    constexpr std::string_view kPrefix = "SSL certificate problem: ";
    if (detail.rfind(kPrefix, 0) == 0) detail.erase(0, kPrefix.size());
    return "TLS: certificate verify failed: " + detail;
  }
  if (tls_code(code)) return "TLS: " + detail;
  if (code == CURLE_OPERATION_TIMEDOUT) return "timeout";
  if (code == CURLE_COULDNT_RESOLVE_HOST) return "resolve: " + detail;
  if (code == CURLE_COULDNT_CONNECT) return "connect: " + detail;
  // An alert after the handshake (TLS 1.3: a client certificate refused) surfaces on read/write.
  if (tls && (code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR || code == CURLE_GOT_NOTHING) &&
      (detail.find("SSL") != std::string::npos || detail.find("alert") != std::string::npos)) {
    return "TLS: " + detail;
  }
  return fmt::format("{}: {}", curl_easy_strerror(code), detail);
}

}  // namespace

std::optional<HttpUrl> parse_http_url(std::string_view url) {
  HttpUrl out;
  if (starts_with_ci(url, "https://")) {
    out.scheme = "https";
    out.port = "443";
    url.remove_prefix(8);
  } else if (starts_with_ci(url, "http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  auto slash = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    out.target = std::string(url.substr(slash));
    if (out.target.front() != '/') out.target.insert(0, "/");
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
  for (char c : out.host + out.target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return std::nullopt;
  }
  return out;
}

bool is_loopback_host(std::string_view host) {
  std::string h = lower(host);
  if (h == "localhost" || h == "localhost.") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  }
  return false;
}

std::string check_outbound_url(std::string_view url, bool allow_insecure) {
  auto parsed = parse_http_url(url);
  if (!parsed) return "must be an https://host[:port]/path URL";
  if (parsed->scheme == "https" || allow_insecure || is_loopback_host(parsed->host)) return {};
  return fmt::format(
      "plain http:// to the non-loopback host {} would send patient data in cleartext; use "
      "https://, or set allow_insecure: true",
      parsed->host);
}

namespace {

// One request: POST with `body`, or GET when `body` is null.
HttpResult perform(std::string_view url, const std::string_view* body, const HttpHeaders& headers,
                   const HttpPostOptions& options) {
  HttpResult result;
  auto parsed = parse_http_url(url);
  if (!parsed) {
    result.error = "unsupported URL (only http[s]://host[:port]/path)";
    return result;
  }
  if (std::string refused = check_outbound_url(url, options.tls.allow_insecure); !refused.empty()) {
    result.error = "refused: " + refused;
    return result;
  }
  const bool tls = parsed->scheme == "https";

  std::unique_ptr<curl_slist, SlistDeleter> list;
  auto add_header = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(list.get(), line.c_str());
    if (next == nullptr) return false;
    (void)list.release();
    list.reset(next);
    return true;
  };
  bool has_content_type = false;
  for (const auto& [name, value] : headers) {
    if (name.empty() || !header_value_ok(name) || !header_value_ok(value) ||
        name.find(':') != std::string::npos) {
      result.error = "invalid header";
      return result;
    }
    if (lower(name) == "content-type") has_content_type = true;
    std::string line = name;
    line += ": ";
    line += value;
    if (!add_header(line)) {
      result.error = "out of memory";
      return result;
    }
  }
  if (!has_content_type && body != nullptr) add_header("Content-Type: application/json");
  add_header("Expect:");  // no 100-continue round trip
  if (options.auth) {
    AccessToken token = options.auth->get();
    if (token.value.empty()) {
      result.error = "auth: " + (token.error.empty() ? std::string("no token") : token.error);
      return result;
    }
    if (!header_value_ok(token.value)) {
      result.error = "auth: the token is not a valid header value";
      return result;
    }
    add_header("Authorization: Bearer " + token.value);
  }

  global_init();
  std::unique_ptr<CURL, CurlDeleter> handle(curl_easy_init());
  if (!handle) {
    result.error = "curl_easy_init failed";
    return result;
  }
  CURL* h = handle.get();
  char errbuf[CURL_ERROR_SIZE] = {0};
  const std::string url_text(url);
  const long timeout_ms = static_cast<long>(std::max<std::int64_t>(1, options.timeout.count()));
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, url_text.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "chartflow");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  if (body != nullptr) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
  BodySink sink{&result, options.max_response_bytes};
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  // TLS: 1.2 minimum, the peer's certificate and name verified, always.
  curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.tls.ca_file.empty()) {
    curl_easy_setopt(h, CURLOPT_CAINFO, options.tls.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_CAPATH, static_cast<char*>(nullptr));  // the configured CAs only
  }
  if (!options.tls.client_cert.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLCERT, options.tls.client_cert.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLKEY,
                     options.tls.client_key.empty() ? options.tls.client_cert.c_str()
                                                    : options.tls.client_key.c_str());
  }

  const CURLcode code = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (code != CURLE_OK) {
    result.error = describe(code, errbuf, tls);
    result.status = 0;
    result.body.clear();
    return result;
  }
  result.status = static_cast<int>(status);
  if (result.status == 401 && options.auth) options.auth->invalidate();
  return result;
}

}  // namespace

HttpResult http_post(std::string_view url, std::string_view body, const HttpHeaders& headers,
                     const HttpPostOptions& options) {
  return perform(url, &body, headers, options);
}

HttpResult http_get(std::string_view url, const HttpHeaders& headers,
                    const HttpPostOptions& options) {
  return perform(url, nullptr, headers, options);
}

}  // namespace chartflow::util
