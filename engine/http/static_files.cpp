#include "http/static_files.hpp"

#include <fstream>
#include <sstream>

namespace chartflow::http {
namespace {

std::string content_type_for(const std::filesystem::path& p) {
  const auto ext = p.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".json") return "application/json";
  if (ext == ".woff2") return "font/woff2";
  return "application/octet-stream";
}

}  // namespace

std::filesystem::path dashboard_root() {
  if (const char* env = std::getenv("CHARTFLOW_DASHBOARD_DIR"); env && *env) return env;
  std::filesystem::path built = std::filesystem::path(CHARTFLOW_DASHBOARD_DIR) / "dist";
  if (std::filesystem::exists(built / "index.html")) return built;
  return CHARTFLOW_DASHBOARD_DIR;
}

Response serve_static(const std::filesystem::path& root, const std::string& rel) {
  // Only plain relative names: no "..", no absolute paths, no hidden files.
  if (rel.find("..") != std::string::npos || rel.find('\0') != std::string::npos ||
      (!rel.empty() && rel[0] == '/'))
    return Response::error(400, "bad path");
  std::filesystem::path p = root / (rel.empty() ? "index.html" : rel);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec)) {
    // Client-side routes (which may hold ids with dots) fall back to the app shell; only
    // missing build assets are real 404s.
    if (rel.rfind("assets/", 0) != 0) p = root / "index.html";
    if (!std::filesystem::is_regular_file(p, ec)) return Response::error(404, "not found");
  }
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  Response r;
  r.content_type = content_type_for(p);
  r.body = ss.str();
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; script-src 'self'; style-src 'self' "
                         "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                         "frame-ancestors 'none'");
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

}  // namespace chartflow::http
