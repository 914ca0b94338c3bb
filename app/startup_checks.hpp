// Everything `serve` and `worker` read and check from their settings before they touch a
// database: one function that `serve` starts from and `chartflow config check` runs, so a check
// added to one is made by both.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "app/commands.hpp"
#include "http/auth_routes.hpp"
#include "http/s3_config.hpp"
#include "http/server.hpp"
#include "http/webhook_auth.hpp"

namespace chartflow::cli {

struct StartupSettings {
  std::optional<int> log_level;  // runtime::parse_level's value, when --log-level was given
  http::ServerSettings server;   // with_api only
  http::AuthSettings auth;       // with_api only
  std::optional<std::string> audit_head_file;
  std::chrono::seconds audit_head_interval{300};
  std::optional<std::chrono::seconds> db_call_timeout;
  std::optional<std::filesystem::path> dashboard;  // with_api only; none found: nullopt
  std::optional<std::string> dsn;                  // nullopt: the embedded cluster
  std::shared_ptr<const http::S3Config> s3;        // with_api only
  std::shared_ptr<const http::WebhookSecrets> webhook_secrets;
};

// Reads the files the settings name (TLS, database URL, S3 and webhook secrets files, the
// dashboard) and validates every value; throws std::exception naming the option at fault.
StartupSettings check_startup(const Args& args, bool with_api);

// An option, else its environment variable.
std::optional<std::string> option_or_env(const Args& args, const char* option, const char* env);

}  // namespace chartflow::cli
