#include "http/app_routes.hpp"

#include "http/chart_routes.hpp"
#include "http/static_files.hpp"

namespace chartflow::http {

void add_app_routes(Router& router, runtime::Engine& engine,
                    const std::filesystem::path& workflows_dir) {
  (void)workflows_dir;
  add_chart_routes(router, engine, nullptr);
  const auto root = dashboard_root();
  router.add("GET", "/", "dashboard", Access::open(),
             [root](Request&) { return serve_static(root, ""); });
  router.add("GET", "/ui/{*path}", "dashboard", Access::open(),
             [root](Request& req) { return serve_static(root, req.param("path")); });
}

}  // namespace chartflow::http
