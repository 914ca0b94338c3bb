#include "app/startup_checks.hpp"

#include <cstdlib>
#include <stdexcept>

#include "app/server_options.hpp"
#include "engine/util/duration.hpp"
#include "http/static_files.hpp"
#include "runtime/log.hpp"

namespace chartflow::cli {
namespace {

std::chrono::seconds duration_option(const std::string& option, const std::string& text,
                                     std::chrono::seconds at_least, const char* at_least_text) {
  auto parsed = core::parse_duration(text);
  if (!parsed || *parsed < at_least)
    throw std::runtime_error("--" + option + " must be a duration of at least " + at_least_text +
                             ", got '" + text + "'");
  return std::chrono::duration_cast<std::chrono::seconds>(*parsed);
}

// --session-ttl, --session-idle, --trusted-proxy and TLS: how sessions and clients are treated.
http::AuthSettings auth_settings(const Args& args) {
  http::AuthSettings out;
  if (auto ttl = args.get("session-ttl"))
    out.session_ttl = duration_option("session-ttl", *ttl, std::chrono::minutes(1), "1m");
  if (auto idle = option_or_env(args, "session-idle", "CHARTFLOW_SESSION_IDLE"))
    out.session_idle = duration_option("session-idle", *idle, std::chrono::minutes(1), "1m");
  if (auto proxies = option_or_env(args, "trusted-proxy", "CHARTFLOW_TRUSTED_PROXY"))
    out.trusted_proxies = http::TrustedProxies::parse(*proxies);
  out.secure_cookie = args.get("tls-cert").has_value();
  return out;
}

}  // namespace

std::optional<std::string> option_or_env(const Args& args, const char* option, const char* env) {
  if (auto v = args.get(option)) return v;
  if (const char* e = std::getenv(env); e && *e) return std::string(e);
  return std::nullopt;
}

StartupSettings check_startup(const Args& args, bool with_api) {
  StartupSettings out;
  if (auto lvl = args.get("log-level")) {
    out.log_level = runtime::parse_level(*lvl);
    if (!out.log_level)
      throw std::runtime_error("--log-level must be debug, info, warning or error");
  }
  // A bad listen address or limit costs no database work.
  if (with_api) {
    out.server = server_settings(args);
    out.auth = auth_settings(args);
  }
  out.audit_head_file = option_or_env(args, "audit-head-file", "CHARTFLOW_AUDIT_HEAD_FILE");
  out.audit_head_interval =
      duration_option("audit-head-interval", args.get_or("audit-head-interval", "5m"),
                      std::chrono::seconds(1), "1s");
  if (auto t = args.get("db-call-timeout"))
    out.db_call_timeout = duration_option("db-call-timeout", *t, std::chrono::seconds(5), "5s");
  if (with_api) {
    auto configured = args.get("dashboard-dir");
    out.dashboard = http::find_dashboard(
        configured ? std::optional<std::filesystem::path>(*configured) : std::nullopt);
  }
  out.dsn = database_url(args);
  if (out.dsn && args.get("wal-archive"))
    throw std::runtime_error(
        "--wal-archive archives the embedded PostgreSQL; an external server archives with its own "
        "archive_command (see docs/operations.md, pgBackRest)");
  if (!out.dsn && !with_api)
    throw std::runtime_error(
        "worker needs --database-url, --database-url-file or CHARTFLOW_DATABASE_URL(_FILE)");
  if (auto file = option_or_env(args, "webhook-secrets", "CHARTFLOW_WEBHOOK_SECRETS"))
    out.webhook_secrets =
        std::make_shared<const http::WebhookSecrets>(http::WebhookSecrets::load(*file));
  if (with_api)
    if (auto file = option_or_env(args, "s3-config", "CHARTFLOW_S3_CONFIG"))
      out.s3 = std::make_shared<const http::S3Config>(http::S3Config::load(*file));
  return out;
}

}  // namespace chartflow::cli
