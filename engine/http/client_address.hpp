// Who the client is when chartflow sits behind a TLS-terminating proxy: `--trusted-proxy`
// lists the proxies (addresses or CIDR blocks) whose X-Forwarded-For and X-Forwarded-Proto are
// believed. From one of them, the request's `remote` becomes the forwarded client address, so
// sign-in throttling, audit records and per-client limits see the real client; from anyone
// else both headers are removed before any route sees the request, so code reading them can
// trust what is left. Immutable after parse(); safe from any thread.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/http.hpp"

namespace chartflow::http {

class TrustedProxies {
 public:
  // "10.0.0.0/8,192.168.1.7,::1" (comma or space separated; empty: none). Throws
  // std::invalid_argument naming the entry that is neither an address nor a CIDR block.
  static TrustedProxies parse(std::string_view spec);

  bool empty() const { return nets_.empty(); }
  bool contains(std::string_view address) const;
  // Rewrites req.remote from X-Forwarded-For when req.remote is a trusted proxy (the rightmost
  // address that is not itself a trusted proxy), else drops X-Forwarded-For/-Proto.
  void apply(Request& req) const;

 private:
  struct Net {
    std::array<unsigned char, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
    int prefix = 128;
  };
  std::vector<Net> nets_;
};

// The scheme a trusted proxy says the client used ("https", "http"), lower case; nullopt
// without an X-Forwarded-Proto header (only trusted proxies' survive TrustedProxies::apply).
std::optional<std::string> forwarded_proto(const Request& req);

}  // namespace chartflow::http
