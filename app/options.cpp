#include "app/options.hpp"

#include <algorithm>
#include <cctype>

#include "engine/util/duration.hpp"

namespace chartflow::cli {

const std::vector<OptionSpec>& server_options() {
  using K = OptionKind;
  static const std::vector<OptionSpec> kOptions = {
      // Where things are.
      {"config", K::kPath, "FILE",
       "settings file (chartflow.yaml); flags and variables override it",
       "/etc/chartflow/chartflow.yaml when installed", kBoth},
      {"listen", K::kText, "HOST:PORT", "address of the API and dashboard", "127.0.0.1:8080"},
      {"data-dir", K::kPath, "DIR", "embedded PostgreSQL's data, used without a database URL",
       "./chartflow-data"},
      {"wal-archive", K::kPath, "DIR",
       "archive the embedded PostgreSQL's WAL here, for point-in-time restores", ""},
      {"workflows", K::kPath, "DIR", "workflow files, with settings/, rules/ and handlers/ beside",
       "./workflows", kBoth},
      {"dashboard-dir", K::kPath, "DIR", "the dashboard's built files",
       "<binary>/../share/chartflow/dashboard"},
      {"database-url", K::kText, "URL", "an external PostgreSQL (else the embedded one)", "", kBoth,
       "database", true},
      {"database-url-file", K::kPath, "FILE", "a file holding the database URL", "", kBoth,
       "database"},
      // Work.
      {"workers", K::kInteger, "N", "step workers of serve", "cores + 1"},
      {"concurrency", K::kInteger, "N", "step workers of worker", "cores + 1", kWorker},
      {"batch-size", K::kInteger, "N", "steps claimed per database round trip", "16", kBoth},
      {"network-workers", K::kInteger, "N", "workers for handlers that call out (bulkhead)", "4",
       kBoth},
      {"lease-ms", K::kInteger, "MS", "how long a claimed step is held without a heartbeat",
       "15000", kBoth},
      {"poll-ms", K::kInteger, "MS", "how often idle workers look for work", "1000", kBoth},
      {"log-retention-days", K::kInteger, "DAYS", "older name of --retention-logs, in days", "30",
       kBoth},
      // Retention (a config file may group these: retention: {runs: 400d, logs: 30d}).
      {"retention-runs", K::kDuration, "D",
       "how long finished runs, their steps, history and events are kept", "400d", kBoth},
      {"retention-logs", K::kDuration, "D", "how long stored log records are kept", "30d", kBoth},
      {"retention-archive-after", K::kDuration, "D",
       "when a finished run leaves the hot tables for the archive", "30d", kBoth},
      {"handler-user", K::kText, "NAME", "the user external handler processes run as",
       "chartflow's own", kBoth},
      {"db-call-timeout", K::kDuration, "D", "longest wait on one database call", "35s", kBoth},
      {"log-level", K::kText, "LEVEL", "debug, info, warning or error (stderr)", "info", kBoth},
      // The listener.
      {"tls-cert", K::kPath, "FILE", "PEM certificate chain: serve HTTPS", ""},
      {"tls-key", K::kPath, "FILE", "PEM private key of --tls-cert", ""},
      {"insecure-listen", K::kFlag, "", "allow plain HTTP on a network address (TLS proxy)",
       "false"},
      {"trusted-proxy", K::kText, "CIDRS", "proxies whose X-Forwarded-For is believed", ""},
      {"public-metrics", K::kFlag, "", "serve /metrics without a credential", "false"},
      {"session-ttl", K::kDuration, "D", "longest dashboard session", "8h"},
      {"session-idle", K::kDuration, "D", "idle time that ends a dashboard session", "15m"},
      // Input limits.
      {"body-limit", K::kSize, "BYTES", "largest API request body", "1M"},
      {"upload-limit", K::kSize, "BYTES", "largest chart upload or S3 object", "32M"},
      {"header-limit", K::kSize, "BYTES", "largest request header", "16K"},
      {"json-depth-limit", K::kInteger, "N", "deepest JSON nesting accepted", "64"},
      {"bundle-entry-limit", K::kInteger, "N", "most entries in an uploaded Bundle", "20000"},
      {"header-timeout-ms", K::kInteger, "MS", "time to send a request's header", "10000"},
      {"body-timeout-ms", K::kInteger, "MS", "time to send a request's body", "60000"},
      {"upload-slots", K::kInteger, "N", "uploads parsed at once", "cores"},
      {"upload-queue", K::kInteger, "N", "uploads waiting for a slot before 503", "64"},
      {"upload-wait-ms", K::kInteger, "MS", "longest wait for an upload slot", "15000"},
      {"max-connections", K::kInteger, "N",
       "open connections in total (0: as many as the file limit allows)", "768"},
      {"max-connections-per-client", K::kInteger, "N", "open connections per client address",
       "256"},
      // Other doors in and out.
      {"webhook-secrets", K::kPath, "FILE", "HMAC secrets of signed event types", ""},
      {"drop-dir", K::kPath, "DIR", "a folder whose files become uploads and events", ""},
      {"s3-config", K::kPath, "FILE", "S3-compatible buckets and keys", ""},
      {"otlp-endpoint", K::kText, "URL", "OTLP/HTTP collector for traces (spans to URL/v1/traces)",
       "", kBoth},
      {"audit-head-file", K::kPath, "FILE", "where the audit chain's head is appended", "", kBoth},
      {"secrets-key-file", K::kPath, "FILE",
       "key sealing stored credentials; made if missing, the same file on every node",
       "./chartflow-secrets.key", kBoth},
      {"audit-head-interval", K::kDuration, "D", "how often the audit head is exported", "5m",
       kBoth},
  };
  return kOptions;
}

const OptionSpec* find_option(std::string_view name) {
  for (const auto& o : server_options())
    if (o.name == name) return &o;
  return nullptr;
}

std::string env_name(std::string_view option) {
  std::string out = "CHARTFLOW_";
  for (char c : option)
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string server_usage(bool with_api) {
  std::string out = with_api
                        ? "usage: chartflow serve [options]\n"
                          "API, dashboard, scheduler and workers in one process.\n"
                        : "usage: chartflow worker [options]\n"
                          "Extra step workers on a shared PostgreSQL (needs a database URL).\n";
  out +=
      "Each option is also a key of the config file and a CHARTFLOW_* variable (--upload-limit:\n"
      "`upload-limit:` and CHARTFLOW_UPLOAD_LIMIT); a flag beats a variable beats the file.\n\n";
  const unsigned want = with_api ? kServe : kWorker;
  for (const auto& o : server_options()) {
    if ((o.use & want) == 0) continue;
    std::string left = "  --" + std::string(o.name);
    if (!o.placeholder.empty()) left += " " + std::string(o.placeholder);
    if (left.size() < 36)
      left.resize(36, ' ');
    else
      left += "\n" + std::string(36, ' ');
    out += left + std::string(o.help);
    if (!o.fallback.empty()) out += " [" + std::string(o.fallback) + "]";
    out += "\n";
  }
  return out;
}

std::optional<std::string> check_value(const OptionSpec& spec, const std::string& value) {
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
  };
  switch (spec.kind) {
    case OptionKind::kInteger:
      if (digits(value) || (value.size() > 1 && value[0] == '-' && digits(value.substr(1))))
        return std::nullopt;
      return "must be a whole number, got '" + value + "'";
    case OptionKind::kSize: {
      std::string_view v = value;
      if (!v.empty() && std::string_view("KkMmGg").find(v.back()) != std::string_view::npos)
        v.remove_suffix(1);
      if (digits(v)) return std::nullopt;
      return "must be a number of bytes (e.g. 1048576 or 1M), got '" + value + "'";
    }
    case OptionKind::kDuration:
      if (core::parse_duration(value)) return std::nullopt;
      return "must be a duration (e.g. 30s, 5m, 8h), got '" + value + "'";
    case OptionKind::kFlag:
      if (value == "true" || value == "false") return std::nullopt;
      return "must be true or false, got '" + value + "'";
    case OptionKind::kText:
    case OptionKind::kPath:
      if (!value.empty()) return std::nullopt;
      return std::string("must not be empty");
  }
  return std::nullopt;
}

std::string redact_url(const std::string& url) {
  // postgresql://user:secret@host/db and key=value conninfo's password=secret.
  std::string out = url;
  if (auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at)
      out.replace(colon + 1, at - colon - 1, "***");
  }
  for (std::size_t p = out.find("password="); p != std::string::npos;
       p = out.find("password=", p + 1)) {
    const auto start = p + 9;
    auto end = out.find_first_of(" &", start);
    if (end == std::string::npos) end = out.size();
    out.replace(start, end - start, "***");
  }
  return out;
}

}  // namespace chartflow::cli
