// Keeps database passwords out of log lines and error messages. libpq echoes parts of a
// malformed connection string in its errors (`end of IPv6 host address not found in URI:
// "postgresql://u:pw@[::1"`), and any message may quote a URL. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chartflow::store {

inline constexpr std::string_view kRedacted = "[redacted]";

// The passwords a connection string carries: URI user info (postgresql://user:pw@host) and
// `password` parameters in URI query or keyword=value form, each as written and percent-decoded.
std::vector<std::string> dsn_passwords(std::string_view dsn);

// `message` with every password of `dsn` replaced by [redacted], and any URL user-info password
// or `password=...` it quotes as well (for secrets that are not the dsn's own).
std::string redact_secrets(std::string message, std::string_view dsn = {});

}  // namespace chartflow::store
