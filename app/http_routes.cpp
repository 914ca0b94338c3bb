#include "app/http_routes.hpp"

#include "http/app_routes.hpp"
#include "http/s3_routes.hpp"

namespace chartflow::app {

void add_http_routes(http::Router& router, runtime::Engine& engine, http::ModuleServices& services,
                     const ModuleRegistry& modules, metrics::Metrics& metrics,
                     const HttpRouteOptions& options, http::ServerSettings& server) {
  router.on_response = [&metrics](const std::string& route, const std::string& method, int status,
                                  double secs) {
    metrics.http_request(route, method, status, secs);
  };
  http::add_auth(router, engine, options.auth);
  http::add_engine_routes(router, engine, metrics, options.public_metrics, options.webhook_secrets,
                          options.unhealthy);
  const std::shared_ptr<const http::S3Config> s3 = options.s3;
  // Objects put into any bucket are held to the upload limit, not the API's body limit, and
  // are bytes of any kind (the S3 routes hold a chart bucket's to the JSON limits).
  if (s3)
    for (const auto& bucket : s3->buckets) {
      server.limits.upload_prefixes.push_back("/" + bucket.first + "/");
      server.limits.raw_body_prefixes.push_back("/" + bucket.first + "/");
    }
  http::add_app_routes(
      router, options.dashboard,
      s3 ? http::RootOverride([s3](http::Request& req) { return http::s3_root(req, *s3); })
         : nullptr);
  // A module's own ways in (a step storing what it read from an EHR) are held to the same.
  services.set_limits(server.limits);
  http::add_module_routes(router, services, modules);
  // Last: the S3 routes take every /{bucket}/{key} path the others leave.
  if (s3)
    http::add_s3_routes(router, engine, s3,
                        http::bind_intake_with_access(services, modules, "chart"),
                        server.limits.upload_body_bytes,
                        core::JsonLimits{server.limits.json_depth, server.limits.bundle_entries});
}

}  // namespace chartflow::app
