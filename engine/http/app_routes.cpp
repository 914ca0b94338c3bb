#include "http/app_routes.hpp"

#include "http/static_files.hpp"

namespace chartflow::http {

void add_app_routes(Router& router, const std::optional<std::filesystem::path>& dashboard,
                    const RootOverride& root_override) {
  auto serve = [dashboard](const std::string& path) {
    if (!dashboard)
      return Response::error(404,
                             "this chartflow has no dashboard: install its files in "
                             "share/chartflow/dashboard beside bin/, or give --dashboard-dir");
    return serve_static(*dashboard, path);
  };
  // The page is public; the override (S3 ListBuckets) authenticates its own requests.
  router.add("GET", "/", "dashboard", Access::open(), [serve, root_override](Request& req) {
    if (root_override)
      if (auto r = root_override(req)) return *r;
    return serve("");
  });
  router.add("GET", "/ui/{*path}", "dashboard", Access::open(),
             [serve](Request& req) { return serve(req.param("path")); });
}

}  // namespace chartflow::http
