// `chartflow serve` (API + workers + scheduler in one process) and `chartflow worker`.
#include <pthread.h>

#include <csignal>
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "config/workflow_loader.hpp"
#include "http/api_routes.hpp"
#include "http/app_routes.hpp"
#include "http/s3_routes.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "runtime/drop_folder.hpp"
#include "runtime/embedded_postgres.hpp"
#include "runtime/engine.hpp"
#include "runtime/handler_setup.hpp"
#include "runtime/log.hpp"

namespace chartflow::cli {
namespace {

constexpr const char* kDefaultListen = "127.0.0.1:8080";
constexpr const char* kDefaultDataDir = "./chartflow-data";
constexpr const char* kDefaultWorkflows = "./workflows";

std::optional<std::string> database_url(const Args& args) {
  if (auto v = args.get("database-url")) return v;
  if (const char* env = std::getenv("CHARTFLOW_DATABASE_URL"); env && *env) return std::string(env);
  return std::nullopt;
}

// Blocks the stop signals in every thread so main can sigwait for them.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return set;
}

}  // namespace

int Args::get_int(const std::string& name, int def) const {
  auto v = get(name);
  if (!v) return def;
  try {
    std::size_t used = 0;
    int n = std::stoi(*v, &used);
    if (used != v->size()) throw std::invalid_argument(name);
    return n;
  } catch (const std::exception&) {
    throw std::runtime_error("--" + name + " must be an integer, got '" + *v + "'");
  }
}

int serve(const Args& args, bool with_api) {
  sigset_t stop_signals = block_stop_signals();
  if (auto lvl = args.get("log-level")) {
    auto parsed = runtime::parse_level(*lvl);
    if (!parsed) throw std::runtime_error("--log-level must be debug, info, warning or error");
    runtime::Log::set_stderr_level(static_cast<LogLevel>(*parsed));
  }
  const std::string listen = args.get_or("listen", kDefaultListen);
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("--listen must be HOST:PORT, got '" + listen + "'");
  http::ServerSettings server_settings;
  server_settings.host = listen.substr(0, colon);
  server_settings.port = static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)));
  if (auto limit = args.get("body-limit")) server_settings.body_limit = std::stoull(*limit);

  std::unique_ptr<runtime::EmbeddedPostgres> embedded;
  auto dsn = database_url(args);
  if (!dsn) {
    if (!with_api)
      throw std::runtime_error("worker needs --database-url or CHARTFLOW_DATABASE_URL");
    const std::filesystem::path data_dir = args.get_or("data-dir", kDefaultDataDir);
    embedded = std::make_unique<runtime::EmbeddedPostgres>(data_dir);
    runtime::Log::info("embedded_postgres_starting", {{"data_dir", data_dir.string()}});
    dsn = embedded->start();
  }

  const std::filesystem::path workflows_dir = args.get_or("workflows", kDefaultWorkflows);
  auto handlers = runtime::make_handler_registry(workflows_dir);
  auto registry = std::make_shared<runtime::WorkflowRegistry>();
  {
    store::Store store(*dsn);
    const int applied = store.migrate();
    runtime::Log::info("migrations_applied", {{"count", applied}});
    if (with_api) {
      auto loaded = config::load_workflow_dir(workflows_dir, runtime::handler_check(*handlers));
      if (!loaded.errors.empty()) {
        for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
        throw std::runtime_error(std::to_string(loaded.errors.size()) +
                                 " error(s) in workflow files under " + workflows_dir.string());
      }
      registry->publish(store, loaded.workflows);
      runtime::Log::info("workflows_loaded", {{"count", loaded.workflows.size()}});
    } else {
      registry->load_latest(store);
    }
    if (embedded) {
      // We hold the data dir's lock, so whoever held these leases is dead: take them back now
      // instead of waiting for them to expire.
      const int n = store.reclaim_all_running("embedded server restarted");
      if (n > 0) runtime::Log::warn("steps_reclaimed", {{"count", n}});
    }
  }

  metrics::Metrics metrics;
  runtime::EngineSettings settings;
  settings.dsn = *dsn;
  settings.workers = args.get_int(with_api ? "workers" : "concurrency", runtime::kDefaultWorkers);
  if (auto lease = args.get("lease-ms")) settings.lease = Millis(std::stoll(*lease));
  if (auto poll = args.get("poll-ms")) settings.poll_interval = Millis(std::stoll(*poll));
  if (auto days = args.get("log-retention-days"))
    settings.log_retention = std::chrono::hours(24 * std::stoll(*days));
  runtime::EngineHooks hooks;
  hooks.run_started = [&metrics](const std::string& wf) { metrics.run_started(wf); };
  hooks.run_finished = [&metrics](const std::string& wf, const std::string& status) {
    metrics.run_finished(wf, status);
  };
  hooks.step_finished = [&metrics](const std::string& wf, const std::string& step, double secs,
                                   const std::string&) { metrics.step_finished(wf, step, secs); };
  hooks.step_expired = [&metrics](bool timed_out) { metrics.step_expired(timed_out); };
  hooks.step_retried = [&metrics](const std::string& wf, const std::string& step) {
    metrics.step_retried(wf, step);
  };
  runtime::Engine engine(settings, handlers, registry, hooks);
  engine.start();

  http::Router router;
  std::unique_ptr<http::Server> server;
  if (with_api) {
    router.on_response = [&metrics](const std::string& route, const std::string& method, int status,
                                    double secs) {
      metrics.http_request(route, method, status, secs);
    };
    std::shared_ptr<const http::WebhookSecrets> secrets;
    auto secrets_file = args.get("webhook-secrets");
    if (!secrets_file)
      if (const char* env = std::getenv("CHARTFLOW_WEBHOOK_SECRETS"); env && *env)
        secrets_file = env;
    if (secrets_file) {
      secrets =
          std::make_shared<const http::WebhookSecrets>(http::WebhookSecrets::load(*secrets_file));
    }
    http::add_engine_routes(router, engine, metrics, secrets);
    std::shared_ptr<const http::S3Config> s3;
    auto s3_file = args.get("s3-config");
    if (!s3_file)
      if (const char* env = std::getenv("CHARTFLOW_S3_CONFIG"); env && *env) s3_file = env;
    if (s3_file) s3 = std::make_shared<const http::S3Config>(http::S3Config::load(*s3_file));
    http::add_app_routes(
        router, engine, workflows_dir,
        s3 ? http::RootOverride([s3](http::Request& req) { return http::s3_root(req, *s3); })
           : nullptr);
    // Last: the S3 routes take every /{bucket}/{key} path the others leave.
    if (s3) http::add_s3_routes(router, engine, s3);
    server = std::make_unique<http::Server>(server_settings, router);
    server->start();
    runtime::Log::info("serving", {{"listen", listen},
                                   {"embedded_postgres", embedded != nullptr},
                                   {"instance", engine.instance_id()}});
    std::cout << "chartflow serving on http://" << listen << "/" << std::endl;
  } else {
    runtime::Log::info("worker_started",
                       {{"instance", engine.instance_id()}, {"concurrency", settings.workers}});
  }

  std::unique_ptr<runtime::DropFolder> drop;
  auto drop_dir = args.get("drop-dir");
  if (!drop_dir)
    if (const char* env = std::getenv("CHARTFLOW_DROP_DIR"); env && *env) drop_dir = env;
  if (drop_dir && with_api) {
    drop = std::make_unique<runtime::DropFolder>(engine, *drop_dir);
    drop->start();
    runtime::Log::info("drop_folder_watched", {{"dir", *drop_dir}});
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  runtime::Log::info("draining", {{"signal", sig}});
  if (drop) drop->stop();
  if (server) server->stop();
  engine.drain();
  runtime::Log::info("stopped");
  if (embedded) embedded->stop();
  return 0;
}

int migrate(const Args& args) {
  std::unique_ptr<runtime::EmbeddedPostgres> embedded;
  auto dsn = database_url(args);
  if (!dsn) {
    embedded = std::make_unique<runtime::EmbeddedPostgres>(
        std::filesystem::path(args.get_or("data-dir", kDefaultDataDir)));
    dsn = embedded->start();
  }
  store::Store store(*dsn);
  const int applied = store.migrate();
  std::cout << "applied " << applied << " migration(s)\n";
  return 0;
}

int validate(const Args& args) {
  if (args.positional.empty()) throw std::runtime_error("validate needs one or more FILEs");
  auto handlers = runtime::make_handler_registry(args.get_or("workflows", kDefaultWorkflows));
  int errors = 0;
  for (const auto& file : args.positional) {
    auto r = config::load_workflow_file(file, runtime::handler_check(*handlers));
    for (const auto& e : r.errors) {
      std::cerr << e.to_string() << "\n";
      ++errors;
    }
    if (r.errors.empty()) std::cout << file << ": ok (" << r.workflow->name << ")\n";
  }
  return errors == 0 ? 0 : 1;
}

}  // namespace chartflow::cli
