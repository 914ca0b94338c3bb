// `chartflow serve` (API + workers + scheduler in one process) and `chartflow worker`.
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <iostream>

#include "app/commands.hpp"
#include "app/database.hpp"
#include "app/fd_limit.hpp"
#include "app/http_routes.hpp"
#include "app/modules.hpp"
#include "app/server_options.hpp"
#include "app/settings.hpp"
#include "app/startup_checks.hpp"
#include "auth/audit.hpp"
#include "auth/audit_sealer.hpp"
#include "auth/sessions.hpp"
#include "config/workflow_loader.hpp"
#include "engine/util/duration.hpp"
#include "engine/util/http_post.hpp"
#include "engine/util/secret_box.hpp"
#include "http/auth_routes.hpp"
#include "http/module_services.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "runtime/drop_folder.hpp"
#include "runtime/embedded_postgres.hpp"
#include "runtime/engine.hpp"
#include "runtime/handler_setup.hpp"
#include "runtime/log.hpp"
#include "runtime/trace_export.hpp"
#include "store/store.hpp"

namespace chartflow::cli {
namespace {

constexpr const char* kDefaultListen = "127.0.0.1:8080";
constexpr const char* kDefaultWorkflows = "./workflows";
// Beside the default data dir: both live in the working directory (the unit's state directory).
constexpr const char* kDefaultSecretsKeyFile = "./chartflow-secrets.key";

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

// The quickstart stays one command: with nothing yet able to sign in, print a one-time admin
// sign-in link. Only its hash is stored; the link appears on stdout only, never in a log.
void print_first_start_link(store::Store& store, const std::string& base_url) {
  std::optional<std::string> code;
  store.with_sql([&](Sql& sql) {
    code = auth::first_start_code(sql);
    if (!code) return;
    auth::AuditEntry e;
    e.actor = "system";
    e.action = "signin_code.create";
    e.resource_type = "signin_code";
    e.remote = "local";
    auth::record(sql, e);
  });
  if (!code) return;
  runtime::Log::info("first_start_signin_code_created");
  std::cout << "\nNo credential exists yet. Sign in as admin (the link works once, for 24 hours):\n"
            << "  " << base_url << "/ui/signin?code=" << *code << "\n"
            << "Then create tokens with `chartflow tokens create` or users with `chartflow users "
               "create`.\n\n"
            << std::flush;
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

// --retention-*: how long each class of rows is kept (--log-retention-days is the older name
// of --retention-logs). An hour at least: expiry runs hourly and drops whole partitions.
store::RetentionPolicy retention_policy(const Args& args) {
  store::RetentionPolicy p;
  auto read = [&](const char* option, std::chrono::milliseconds* out) {
    const auto text = args.get(option);
    if (!text) return;
    const auto d = core::parse_duration(*text);
    if (!d || *d < std::chrono::hours(1))
      throw std::runtime_error(std::string("--") + option +
                               " must be a duration of at least 1h (400d, 36h), got '" + *text +
                               "'");
    *out = *d;
  };
  if (auto days = args.get("log-retention-days")) {
    const int n = args.get_int("log-retention-days", 30);
    if (n < 1) throw std::runtime_error("--log-retention-days must be at least 1, got " + *days);
    p.logs = std::chrono::hours(24 * n);
  }
  read("retention-runs", &p.runs);
  read("retention-logs", &p.logs);
  read("retention-archive-after", &p.archive_after);
  if (p.archive_after > p.runs)
    throw std::runtime_error("--retention-archive-after must not be longer than --retention-runs");
  return p;
}

int serve(const Settings& resolved, bool with_api) {
  const Args& args = resolved.args;
  sigset_t stop_signals = block_stop_signals();
  // Every value and named file checked before anything starts (config check runs the same).
  StartupSettings startup = check_startup(args, with_api);
  if (startup.log_level) runtime::Log::set_stderr_level(static_cast<LogLevel>(*startup.log_level));
  http::ServerSettings& server_settings = startup.server;
  const http::AuthSettings& auth_settings = startup.auth;
  if (startup.db_call_timeout) store::Store::set_call_timeout(*startup.db_call_timeout);

  if (resolved.file) runtime::Log::info("config_file_read", {{"file", resolved.file->string()}});
  const std::optional<std::filesystem::path>& dashboard = startup.dashboard;
  if (with_api) {
    if (dashboard)
      runtime::Log::info("dashboard_served", {{"dir", dashboard->string()}});
    else
      runtime::Log::warn("dashboard_missing",
                         {{"hint",
                           "no dashboard files found beside the binary "
                           "(../share/chartflow/dashboard): / answers 404; give --dashboard-dir"}});
  }

  metrics::Metrics metrics;  // outlives the embedded server, whose supervisor counts restarts
  std::unique_ptr<runtime::EmbeddedPostgres> embedded;
  auto dsn = startup.dsn;
  if (!dsn) {
    const std::filesystem::path data_dir = args.get_or("data-dir", kDefaultDataDir);
    runtime::EmbeddedSettings cluster;
    if (auto archive = args.get("wal-archive")) cluster.wal_archive = *archive;
    embedded = std::make_unique<runtime::EmbeddedPostgres>(data_dir, cluster);
    runtime::Log::info("embedded_postgres_starting",
                       {{"data_dir", data_dir.string()},
                        {"wal_archive", cluster.wal_archive ? cluster.wal_archive->string() : ""}});
    dsn = embedded->start();
    runtime::SupervisorSettings supervision;
    supervision.on_restart = [&metrics] { metrics.embedded_postgres_restarts(); };
    embedded->supervise(std::move(supervision));
    metrics.embedded_postgres_restarts(0);
  }

  const std::filesystem::path workflows_dir = args.get_or("workflows", kDefaultWorkflows);
  runtime::external::PoolHooks pool_hooks;
  pool_hooks.pool_size = [&metrics](const std::string& handler, int warm, int busy) {
    metrics.handler_pool(handler, warm, busy);
  };
  pool_hooks.cold_start = [&metrics](const std::string& handler) {
    metrics.handler_cold_start(handler);
  };
  // External handlers never hold root's privileges when an operator says whose they take.
  if (auto user = option_or_env(args, "handler-user", "CHARTFLOW_HANDLER_USER"))
    pool_hooks.run_as = runtime::external::resolve_run_as(*user);
  else if (geteuid() == 0)
    runtime::Log::warn("handlers_run_as_root",
                       {{"hint",
                         "pass --handler-user NAME (e.g. nobody) to run external handlers "
                         "as an unprivileged user"}});
  handlers::ChartHandlerOptions chart;
  const std::string key_file = args.get_or("secrets-key-file", kDefaultSecretsKeyFile);
  bool key_created = false;
  chart.secrets = std::make_shared<const util::SecretBox>(
      util::SecretBox::load_or_create(key_file, &key_created));
  // A new key opens nothing stored under an old one: loud, so a wrong working directory or a
  // key file left out of a restore is noticed at start, not at the first delivery.
  if (key_created)
    runtime::Log::warn(
        "secrets_key_created",
        {{"file", key_file},
         {"hint",
          "credentials stored under another key (outbound FHIR subscriptions' headers) "
          "will not open; every node needs this same file"}});
  auto modules = app::make_modules(workflows_dir, pool_hooks, std::move(chart));
  auto handlers = modules->handler_registry();
  auto registry = std::make_shared<runtime::WorkflowRegistry>();
  {
    store::Store store(*dsn);
    const int applied = store.migrate(modules->migrations());
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
    if (with_api)
      print_first_start_link(store, std::string(server_settings.tls ? "https://" : "http://") +
                                        args.get_or("listen", kDefaultListen));
    if (embedded) {
      // We hold the data dir's lock, so whoever held these leases is dead: take them back now
      // instead of waiting for them to expire.
      const int n = store.reclaim_all_running("embedded server restarted");
      if (n > 0) runtime::Log::warn("steps_reclaimed", {{"count", n}});
    }
  }

  // Every workflow's series exist at zero from the start, so increase() sees the first burst.
  for (const auto& wf : registry->latest()) metrics.declare_workflow(wf->workflow);
  runtime::prewarm_external_handlers(*handlers, [&] {
    std::vector<core::Workflow> latest;
    for (const auto& wf : registry->latest()) latest.push_back(wf->workflow);
    return latest;
  }());
  runtime::EngineSettings settings;
  settings.dsn = *dsn;
  settings.workers = args.get_int(with_api ? "workers" : "concurrency", runtime::default_workers());
  settings.batch_size = args.get_int("batch-size", runtime::kDefaultBatchSize);
  if (settings.batch_size < 1) throw std::runtime_error("--batch-size must be at least 1");
  const int network_workers = args.get_int("network-workers", runtime::kDefaultBulkheadWorkers);
  if (network_workers < 0) throw std::runtime_error("--network-workers must be 0 or more");
  settings.bulkhead_workers[kNetworkBulkhead] = network_workers;
  if (auto lease = args.get("lease-ms")) settings.lease = Millis(std::stoll(*lease));
  if (auto poll = args.get("poll-ms")) settings.poll_interval = Millis(std::stoll(*poll));
  settings.retention = retention_policy(args);
  if (auto otlp = args.get("otlp-endpoint"); otlp && !otlp->empty()) {
    if (!util::parse_http_url(*otlp))
      throw std::runtime_error("--otlp-endpoint must be an http:// or https:// URL");
    runtime::TraceExportSettings traces;
    traces.endpoint = *otlp;
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    traces.instance = std::string(host) + ":" + std::to_string(getpid());
    settings.traces = std::make_shared<runtime::TraceExporter>(traces);
    runtime::Log::info("traces_exported", {{"endpoint", *otlp}});
  }
  runtime::EngineHooks hooks;
  hooks.run_started = [&metrics](const std::string& wf) { metrics.run_started(wf); };
  hooks.debounced_run_started = [&metrics](const std::string& wf, int events) {
    metrics.events_coalesced(wf, events - 1);
  };
  hooks.run_finished = [&metrics](const std::string& wf, const std::string& status) {
    metrics.run_finished(wf, status);
  };
  hooks.step_finished = [&metrics](const std::string& wf, const std::string& step, double secs,
                                   const std::string&) { metrics.step_finished(wf, step, secs); };
  hooks.step_expired = [&metrics](bool timed_out) { metrics.step_expired(timed_out); };
  hooks.step_retried = [&metrics](const std::string& wf, const std::string& step) {
    metrics.step_retried(wf, step);
  };
  store::Store::set_query_observer(
      [&metrics](std::string_view kind, double secs) { metrics.db_query(kind, secs); });
  runtime::Engine engine(settings, handlers, registry, hooks);
  engine.reserve_event_types(modules->reserved_event_types());
  // What the modules' routes and intake hooks reach the engine through.
  http::ModuleServices services(engine, &metrics);
  // Declared before the sampler that reads the server, the router before the server using it.
  http::Router router;
  std::unique_ptr<http::Server> server;  // with the API only
  metrics.on_collect([&engine, &metrics, &server, traces = settings.traces] {
    if (traces) metrics.set_trace_spans_dropped(static_cast<double>(traces->dropped()));
    const auto pool = engine.pool_stats();
    metrics.set_db_pool(pool.in_use, pool.idle, pool.max);
    if (server) {
      const auto uploads = server->upload_stats();
      metrics.set_upload_slots(uploads.in_use, uploads.waiting, uploads.slots);
    }
  });
  engine.start();
  auth::AuditSealer sealer(
      [&engine](const std::function<void(Sql&)>& fn) { engine.transaction(fn); },
      [](const std::string& error) {
        runtime::Log::warn("audit_seal_failed", {{"error", error}});
      });
  // The chain's head leaves the database every --audit-head-interval: as a log line always
  // (stderr, so syslog or the journal keep it), and appended to --audit-head-file when given.
  sealer.export_head(
      {startup.audit_head_file.value_or(""),
       std::chrono::duration_cast<std::chrono::milliseconds>(startup.audit_head_interval),
       [](const auth::AuditHead& head) {
         runtime::Log::info("audit_head", {{"count", head.count}, {"head", head.hash}});
       }});
  sealer.start();

  // One reading of the webhook secrets for both doors that know signed types (the events API and
  // the drop folder, which refuses them unsigned).
  const std::shared_ptr<const http::WebhookSecrets> secrets = startup.webhook_secrets;
  if (with_api) {
    app::HttpRouteOptions routes;
    routes.auth = auth_settings;
    routes.public_metrics = args.get("public-metrics").has_value();
    routes.webhook_secrets = secrets;
    if (embedded) routes.unhealthy = [pg = embedded.get()] { return pg->unhealthy_reason(); };
    routes.dashboard = dashboard;
    routes.s3 = startup.s3;
    app::add_http_routes(router, engine, services, *modules, metrics, routes, server_settings);
    const cli::FdBudget fds = cli::fit_connections_to_fd_limit(server_settings);
    if (fds.lowered)
      runtime::Log::warn("max_connections_lowered",
                         {{"requested", fds.requested},
                          {"max_connections", fds.max_connections},
                          {"file_limit", fds.limit},
                          {"hint", "raise LimitNOFILE (ulimit -n) to allow more connections"}});
    server = std::make_unique<http::Server>(server_settings, router);
    server->start();
    server_settings.port = server->port();  // what --listen HOST:0 was given
    const std::string notice =
        listen_notice(server_settings, args.get("insecure-listen").has_value());
    // The bound port too: with --listen HOST:0 the system picks it (tests, side-by-side runs).
    runtime::Log::info("serving", {{"listen", args.get_or("listen", kDefaultListen)},
                                   {"port", server->port()},
                                   {"tls", server_settings.tls.has_value()},
                                   {"notice", notice},
                                   {"embedded_postgres", embedded != nullptr},
                                   {"instance", engine.instance_id()}});
    std::cout << notice << std::endl;
  } else {
    runtime::Log::info("worker_started",
                       {{"instance", engine.instance_id()}, {"concurrency", settings.workers}});
  }

  std::unique_ptr<runtime::DropFolder> drop;
  auto drop_dir = args.get("drop-dir");
  if (!drop_dir)
    if (const char* env = std::getenv("CHARTFLOW_DROP_DIR"); env && *env) drop_dir = env;
  if (drop_dir && with_api) {
    // The limits the HTTP doors apply, and the types whose webhook needs a signature: a file
    // carries none, so those types may not enter through the folder (docs/workflows.md).
    runtime::DropLimits drop_limits;
    drop_limits.event_bytes = server_settings.limits.body_bytes;
    drop_limits.chart_bytes = server_settings.limits.upload_body_bytes;
    drop_limits.object_bytes = server_settings.limits.upload_body_bytes;
    drop_limits.json = {server_settings.limits.json_depth, server_settings.limits.bundle_entries};
    drop = std::make_unique<runtime::DropFolder>(
        engine, *drop_dir, drop_limits, http::bind_intake(services, *modules, "chart"),
        [secrets](const std::string& type) { return secrets && secrets->find(type) != nullptr; });
    drop->start();
    runtime::Log::info("drop_folder_watched", {{"dir", *drop_dir}});
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  runtime::Log::info("draining", {{"signal", sig}});
  if (drop) drop->stop();
  if (server) server->stop();
  sealer.stop();
  engine.drain();
  runtime::Log::info("stopped");
  store::Store::set_query_observer(nullptr);  // every thread that used a store has stopped
  if (embedded) embedded->stop();
  return 0;
}

int migrate(const Args& args) {
  CommandDatabase db(args);
  store::Store store(db.dsn());
  const int applied = store.migrate(app::module_migrations());
  std::cout << "applied " << applied << " migration(s)\n";
  return 0;
}

int validate(const Args& args) {
  if (args.positional.empty()) throw std::runtime_error("validate needs one or more FILEs");
  int errors = 0;
  for (const auto& file : args.positional) {
    // Settings and handler modules are relative to the workflows folder, which for a file
    // checked on its own is the folder it sits in.
    const std::string parent = std::filesystem::path(file).parent_path().string();
    auto modules = app::make_modules(args.get_or("workflows", parent.empty() ? "." : parent));
    auto r = config::load_workflow_file(file, runtime::handler_check(modules->handlers()));
    for (const auto& e : r.errors) {
      std::cerr << e.to_string() << "\n";
      ++errors;
    }
    if (r.errors.empty()) std::cout << file << ": ok (" << r.workflow->name << ")\n";
  }
  return errors == 0 ? 0 : 1;
}

}  // namespace chartflow::cli
