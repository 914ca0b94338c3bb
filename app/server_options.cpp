#include "app/server_options.hpp"

#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace chartflow::cli {
namespace {

constexpr const char* kDefaultListen = "127.0.0.1:8080";

// A non-negative integer with an optional K, M or G suffix (binary multiples).
std::uint64_t parse_size(const Args& args, const std::string& name, std::uint64_t def) {
  auto v = args.get(name);
  if (!v) return def;
  std::uint64_t n = 0;
  std::size_t i = 0;
  const std::string bad =
      "--" + name + " must be a number of bytes (e.g. 1048576 or 1M), got '" + *v + "'";
  for (; i < v->size() && std::isdigit(static_cast<unsigned char>((*v)[i])) != 0; ++i) {
    if (n > (UINT64_MAX - 9) / 10) throw std::runtime_error(bad);
    n = n * 10 + static_cast<std::uint64_t>((*v)[i] - '0');
  }
  if (i == 0) throw std::runtime_error(bad);
  const std::string suffix = v->substr(i);
  int shift = 0;
  if (suffix == "K" || suffix == "k") shift = 10;
  if (suffix == "M" || suffix == "m") shift = 20;
  if (suffix == "G" || suffix == "g") shift = 30;
  if (shift == 0 && !suffix.empty()) throw std::runtime_error(bad);
  if (n > (UINT64_MAX >> shift)) throw std::runtime_error(bad);
  return n << shift;
}

int parse_positive(const Args& args, const std::string& name, int def) {
  const int n = args.get_int(name, def);
  if (n <= 0) throw std::runtime_error("--" + name + " must be positive");
  return n;
}

// A count where 0 means "none" (no cap).
int parse_non_negative(const Args& args, const std::string& name, int def) {
  const int n = args.get_int(name, def);
  if (n < 0) throw std::runtime_error("--" + name + " must be 0 (no cap) or positive");
  return n;
}

std::string read_secret_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + what + " " + path);
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) throw std::runtime_error(what + " " + path + " is empty");
  return text;
}

bool is_loopback(const std::string& host) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

}  // namespace

http::ServerSettings server_settings(const Args& args) {
  http::ServerSettings s;
  const std::string listen = args.get_or("listen", kDefaultListen);
  const auto colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    try {
      std::size_t used = 0;
      port = std::stoi(listen.substr(colon + 1), &used);
      if (used != listen.size() - colon - 1) port = -1;
    } catch (const std::exception&) {
      port = -1;
    }
  }
  if (port < 0 || port > 65535)
    throw std::runtime_error("--listen must be HOST:PORT, got '" + listen + "'");
  s.host = listen.substr(0, colon);
  if (s.host.size() > 2 && s.host.front() == '[' && s.host.back() == ']')
    s.host = s.host.substr(1, s.host.size() - 2);
  s.port = static_cast<unsigned short>(port);

  auto cert = args.get("tls-cert");
  auto key = args.get("tls-key");
  if (cert.has_value() != key.has_value())
    throw std::runtime_error("--tls-cert and --tls-key go together");
  if (cert) s.tls = http::TlsFiles{*cert, *key};
  if (!s.tls && !is_loopback(s.host) && !args.get("insecure-listen"))
    throw std::runtime_error(
        "refusing to listen on " + listen +
        " without TLS: charts would cross the network in clear text. Give --tls-cert and "
        "--tls-key, listen on 127.0.0.1, or pass --insecure-listen (e.g. behind a TLS proxy)");

  s.upload_slots = parse_positive(args, "upload-slots", s.upload_slots);
  s.upload_queue = parse_positive(args, "upload-queue", s.upload_queue);
  s.max_connections = parse_non_negative(args, "max-connections", s.max_connections);
  s.max_connections_per_client =
      parse_positive(args, "max-connections-per-client", s.max_connections_per_client);
  auto& l = s.limits;
  const auto header = parse_size(args, "header-limit", l.header_bytes);
  if (header == 0 || header > UINT32_MAX) throw std::runtime_error("--header-limit out of range");
  l.header_bytes = static_cast<std::uint32_t>(header);
  l.body_bytes = parse_size(args, "body-limit", l.body_bytes);
  l.upload_body_bytes = parse_size(args, "upload-limit", l.upload_body_bytes);
  l.json_depth = parse_positive(args, "json-depth-limit", l.json_depth);
  l.bundle_entries = static_cast<std::size_t>(
      parse_positive(args, "bundle-entry-limit", static_cast<int>(l.bundle_entries)));
  l.header_timeout = std::chrono::milliseconds(
      parse_positive(args, "header-timeout-ms", static_cast<int>(l.header_timeout.count())));
  l.body_timeout = std::chrono::milliseconds(
      parse_positive(args, "body-timeout-ms", static_cast<int>(l.body_timeout.count())));
  l.upload_wait = std::chrono::milliseconds(
      parse_positive(args, "upload-wait-ms", static_cast<int>(l.upload_wait.count())));
  return s;
}

std::string listen_notice(const http::ServerSettings& s, bool insecure_listen) {
  const std::string host = s.host.find(':') != std::string::npos ? "[" + s.host + "]" : s.host;
  const std::string url =
      (s.tls ? "https://" : "http://") + host + ":" + std::to_string(s.port) + "/";
  if (s.tls) return "chartflow serving on " + url + " (TLS 1.2+)";
  if (insecure_listen && !is_loopback(s.host))
    return "chartflow serving on " + url +
           " WITHOUT TLS on a network address (--insecure-listen): use only behind a TLS proxy";
  return "chartflow serving on " + url +
         " (no TLS: loopback only; give --tls-cert/--tls-key "
         "to serve other machines)";
}

std::optional<std::string> database_url(const Args& args) {
  if (auto v = args.get("database-url")) return v;
  if (auto file = args.get("database-url-file"))
    return read_secret_file(*file, "database URL file");
  if (const char* env = std::getenv("CHARTFLOW_DATABASE_URL"); env && *env) return std::string(env);
  if (const char* file = std::getenv("CHARTFLOW_DATABASE_URL_FILE"); file && *file)
    return read_secret_file(file, "database URL file");
  return std::nullopt;
}

}  // namespace chartflow::cli
