// The HTTP client the CLI's client commands share: plain HTTP to a local server, with the
// credential from $CHARTFLOW_TOKEN.
#pragma once

#include <string>

#include "app/commands.hpp"

namespace chartflow::cli {

struct Reply {
  int status = 0;
  std::string body;
};

// --server, else CHARTFLOW_SERVER, else the address `serve` listens on by default.
std::string server_of(const Args& args);
// One request; throws naming the server when it cannot be reached.
Reply request(const std::string& server, const std::string& method, const std::string& target,
              const std::string& body, const std::string& content_type);
// What to do about a 401 or 403, else "".
std::string credential_hint(const Reply& reply);
std::string url_encode(const std::string& v);

}  // namespace chartflow::cli
