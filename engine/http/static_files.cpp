#include "http/static_files.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "engine/util/install_prefix.hpp"

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

std::optional<std::filesystem::path> find_dashboard(
    const std::optional<std::filesystem::path>& configured) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (configured) {
    if (!fs::is_regular_file(*configured / "index.html", ec))
      throw std::runtime_error("--dashboard-dir " + configured->string() +
                               " holds no index.html (the dashboard's built files)");
    return fs::absolute(*configured, ec);
  }
  if (const auto prefix = util::install_prefix()) {
    const fs::path installed = *prefix / "share" / "chartflow" / "dashboard";
    if (fs::is_regular_file(installed / "index.html", ec)) return installed;
  }
  // A binary in its build tree: the source tree's build, else its unbuilt shell (which says
  // how to build it).
  const fs::path source = CHARTFLOW_DASHBOARD_DIR;
  if (fs::is_regular_file(source / "dist" / "index.html", ec)) return source / "dist";
  if (fs::is_regular_file(source / "index.html", ec)) return source;
  return std::nullopt;
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
