#include "http/app_routes.hpp"

#include "http/static_files.hpp"

namespace chartflow::http {

void add_app_routes(Router& router, RootOverride root_override) {
  const auto root = dashboard_root();
  // The page is public; the override (S3 ListBuckets) authenticates its own requests.
  router.add("GET", "/", "dashboard", Access::open(), [root, root_override](Request& req) {
    if (root_override)
      if (auto r = root_override(req)) return *r;
    return serve_static(root, "");
  });
  router.add("GET", "/ui/{*path}", "dashboard", Access::open(),
             [root](Request& req) { return serve_static(root, req.param("path")); });
}

}  // namespace chartflow::http
