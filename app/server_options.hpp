// Turns `serve` options into server settings and finds the database URL, validating both once at
// startup (a bad value stops the process with a message naming the option).
#pragma once

#include <optional>
#include <string>

#include "app/commands.hpp"
#include "http/server.hpp"

namespace chartflow::cli {

// --listen, --tls-cert/--tls-key, --insecure-listen and the input limits. Without TLS only a
// loopback address is accepted unless --insecure-listen is given.
http::ServerSettings server_settings(const Args& args);

// One line for the log and the terminal saying how the server is reachable and whether the
// connection is encrypted.
std::string listen_notice(const http::ServerSettings& settings, bool insecure_listen);

// --database-url, --database-url-file, CHARTFLOW_DATABASE_URL, CHARTFLOW_DATABASE_URL_FILE (in
// that order). A file keeps the password out of the process list and the environment; its
// trailing newline is dropped.
std::optional<std::string> database_url(const Args& args);

}  // namespace chartflow::cli
