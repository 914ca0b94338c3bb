// Test support: a tiny blocking HTTP/1.1 client (Boost.Beast) for talking to a chartflow server
// from a test. One connection per request ("Connection: close"), so a test never depends on
// keep-alive behaviour it does not mean to test. Thread-safe: no shared state.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace chartflow::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  // The body parsed as JSON; a JSON null when it is not JSON (the test then fails on use).
  nlohmann::json json() const;
  std::string header(const std::string& lower_name) const;
};

inline constexpr std::chrono::seconds kDefaultHttpTimeout{30};

// Sends one request and reads the whole response. A non-empty body without a Content-Type in
// `headers` goes out as application/json. Throws std::runtime_error (boost::system::system_error)
// when the server cannot be reached or the exchange fails or times out.
HttpResponse request(const std::string& method, const std::string& host, unsigned short port,
                     const std::string& target, const std::string& body = "",
                     const std::map<std::string, std::string>& headers = {},
                     std::chrono::milliseconds timeout = kDefaultHttpTimeout);

}  // namespace chartflow::testing
