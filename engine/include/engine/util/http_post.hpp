// The outbound HTTP client for the few calls handlers make (insurer endpoints, bill webhooks,
// OAuth2 token endpoints, FHIR reads), on libcurl: https:// with TLS 1.2 minimum and the server's
// certificate and host name verified (against the system store, or only the configured CA file), an
// optional client certificate (mTLS), and an optional access token source for the Authorization
// header (engine/util/access_token.hpp). Plain http:// only to a loopback host (127.0.0.0/8, ::1,
// localhost) or with allow_insecure. One connection per call; no redirects; bounded by a total
// timeout. Handlers run on worker threads that may block, so a synchronous call is fine.
// Thread-safe: no shared state but the access token source's cache (itself thread-safe).
// Errors are transport errors only ("TLS: certificate verify failed: ...", "timeout"); neither
// the request body nor the response body ever appears in one.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chartflow::util {

struct HttpUrl {
  std::string scheme = "http";  // "http" or "https"
  std::string host;             // without the brackets of an IPv6 literal
  std::string port = "80";      // "443" for https unless given
  std::string target = "/";     // path and query
};

// Parses "http[s]://host[:port][/path]"; nullopt for anything else (other schemes, userinfo,
// bad port, blanks or control characters).
std::optional<HttpUrl> parse_http_url(std::string_view url);

// True for "localhost", 127.0.0.0/8 and ::1: hosts whose traffic never leaves the machine.
bool is_loopback_host(std::string_view host);

// "" when `url` may carry patient data: https://, or http:// to a loopback host, or http:// with
// `allow_insecure`; else why not (for a settings error).
std::string check_outbound_url(std::string_view url, bool allow_insecure);

struct TlsOptions {
  std::string ca_file;          // PEM CA bundle; set: only these CAs are trusted, else the system's
  std::string client_cert;      // PEM client certificate (mTLS); "" = none
  std::string client_key;       // its PEM private key; "" = in the client_cert file
  bool allow_insecure = false;  // permits http:// to a non-loopback host (cleartext!)
};

class AccessTokenSource;  // engine/util/access_token.hpp

struct HttpPostOptions {
  std::chrono::milliseconds timeout{10'000};
  TlsOptions tls;
  // Sends "Authorization: Bearer <token>" when set; a 401 answer makes it forget its cached token.
  std::shared_ptr<AccessTokenSource> auth;
  // Response bytes kept; the rest is read and dropped. A FHIR read ($everything) may need more
  // than an acknowledgement does.
  std::size_t max_response_bytes = std::size_t{64} * 1024;
};

struct HttpResult {
  int status = 0;          // 0 when no HTTP response was read
  std::string error;       // transport error ("connect: ...", "TLS: ...", "timeout"), else ""
  std::string body;        // response body (capped at options.max_response_bytes)
  bool truncated = false;  // the body was longer than the cap
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// POSTs `body` (Content-Type application/json unless `headers` name one).
HttpResult http_post(std::string_view url, std::string_view body, const HttpHeaders& headers,
                     const HttpPostOptions& options);

// GETs `url` (a FHIR read; no body), with the same transport rules and credentials.
HttpResult http_get(std::string_view url, const HttpHeaders& headers,
                    const HttpPostOptions& options);

inline HttpResult http_post(std::string_view url, std::string_view body, const HttpHeaders& headers,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  HttpPostOptions options;
  options.timeout = timeout;
  return http_post(url, body, headers, options);
}

}  // namespace chartflow::util
