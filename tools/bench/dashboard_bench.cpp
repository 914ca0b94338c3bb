// `chartflow bench-dashboard`: issue #5's "the dashboard stays fast with 100,000 runs". Seeds
// N runs (5 workflows, mostly succeeded, some failed/waiting/running, 20,000 charts, spread over
// 30 days) into a fresh database, starts a real `chartflow serve` (API only) and times the
// requests the dashboard's runs page makes: the list, each filter (workflow, status, chart id,
// time range), combinations, a deep page, and the workflows page. Times are client-side over a
// keep-alive connection, so they bound the server time from above.
#include "tools/bench/dashboard_bench.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "runtime/log.hpp"
#include "store/store.hpp"
#include "tools/bench/bench_http.hpp"
#include "tools/bench/bench_util.hpp"

namespace chartflow::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kWorkflows = 5;
constexpr int kCharts = 20'000;

// Events and runs in bulk; the statuses are spread so a rare status is rare (2% running).
void seed(store::Store& s, int runs) {
  s.with_sql([&](Sql& sql) {
    sql.query(
        "INSERT INTO workflow_version (name, version, content_hash, definition, source_file) "
        "SELECT 'bench-wf-' || i, 1, 'bench-' || i, jsonb_build_object('name', 'bench-wf-' || "
        "i), 'bench' FROM generate_series(0, $1::int - 1) i",
        {std::to_string(kWorkflows)});
    sql.query(
        "INSERT INTO event (type, body, source, created_at) SELECT 'bench.dashboard', "
        "jsonb_build_object('n', g), 'bench', now() - ($1::int - g) * (interval '30 days' / "
        "$1::int) FROM generate_series(1, $1::int) g",
        {std::to_string(runs)});
    sql.query(
        "WITH v AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(name ORDER BY id) AS "
        "names FROM workflow_version WHERE source_file = 'bench') "
        "INSERT INTO workflow_run (workflow_version_id, workflow, event_id, status, "
        "remaining_steps, subject, created_at, started_at, finished_at, error) "
        "SELECT v.ids[1 + e.id % $1::int], v.names[1 + e.id % $1::int], e.id, st.status, 0, "
        "'chart-' || (e.id * 7919 % $2::int), e.created_at, e.created_at, "
        "CASE WHEN st.status IN ('succeeded', 'failed') THEN e.created_at + interval '150 ms' "
        "END, CASE WHEN st.status = 'failed' THEN 'step billing failed: benchmark' END "
        "FROM event e CROSS JOIN v CROSS JOIN LATERAL (SELECT CASE WHEN e.id % 100 < 90 THEN "
        "'succeeded' WHEN e.id % 100 < 95 THEN 'failed' WHEN e.id % 100 < 98 THEN 'waiting' "
        "ELSE 'running' END AS status) st WHERE e.type = 'bench.dashboard'",
        {std::to_string(kWorkflows), std::to_string(kCharts)});
    sql.query("ANALYZE");
  });
}

std::string scalar(store::Store& s, const std::string& q) {
  Json rows;
  s.with_sql([&](Sql& sql) { rows = sql.query(q, {}); });
  return rows.at(0).begin()->get<std::string>();
}

std::string rfc3339_days_ago(store::Store& s, int days) {
  return scalar(s, "SELECT to_char((now() - interval '" + std::to_string(days) +
                       " days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
}

}  // namespace

int run_dashboard_bench(const Options& options) {
  runtime::Log::set_stderr_level(LogLevel::kWarning);
  const int runs = std::stoi(opt(options, "runs", "100000"));
  const int repeat = std::stoi(opt(options, "repeat", "30"));

  BenchDatabase db(options, "chartflow-bench-dashboard");
  store::Store store(db.dsn());
  const auto t0 = SteadyClock::now();
  seed(store, runs);
  const double seed_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();

  const auto log = std::filesystem::temp_directory_path() /
                   ("chartflow-bench-dashboard-" + std::to_string(getpid()) + ".log");
  const unsigned short port = free_port();
  ServerProcess server({"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url",
                        db.dsn(), "--workers", "0", "--log-level", "warning", "--workflows",
                        opt(options, "workflows", default_workflows_dir())},
                       {}, log);
  wait_ready(port, server);

  const std::string day15 = rfc3339_days_ago(store, 15);
  const std::string day15h =
      scalar(store,
             "SELECT to_char((now() - interval '15 days' + interval '1 hour') AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
  const std::string deep = std::to_string(runs / 2);
  const std::vector<std::pair<std::string, std::string>> queries = {
      {"newest 50", "/v1/runs?limit=50"},
      {"workflow", "/v1/runs?workflow=bench-wf-3&limit=50"},
      {"status failed", "/v1/runs?status=failed&limit=50"},
      {"status running (2%)", "/v1/runs?status=running&limit=50"},
      {"status cancelled (none)", "/v1/runs?status=cancelled&limit=50"},
      {"workflow + status", "/v1/runs?workflow=bench-wf-2&status=failed&limit=50"},
      {"workflow + status running", "/v1/runs?workflow=bench-wf-1&status=running&limit=50"},
      {"chart id + status", "/v1/runs?subject=chart-1234&status=failed&limit=50"},
      {"chart id", "/v1/runs?subject=chart-1234&limit=50"},
      {"unknown chart id", "/v1/runs?subject=no-such-chart&limit=50"},
      {"time range 1 h", "/v1/runs?since=" + day15 + "&until=" + day15h + "&limit=50"},
      {"time range + status",
       "/v1/runs?since=" + day15 + "&until=" + day15h + "&status=failed&limit=50"},
      {"since 15 days + workflow + status",
       "/v1/runs?since=" + day15 + "&workflow=bench-wf-1&status=waiting&limit=50"},
      {"page at the middle", "/v1/runs?after=" + deep + "&limit=50"},
      {"workflow, page at the middle", "/v1/runs?workflow=bench-wf-4&after=" + deep + "&limit=50"},
      {"workflows page (recent counts)", "/v1/workflows"},
  };

  std::printf(
      "chartflow dashboard benchmark: %d runs seeded in %.1f s; chartflow serve pid %d "
      "(API only); PostgreSQL %s: %s\n",
      runs, seed_s, server.pid(), db.embedded() ? "embedded" : "external", db.durability().c_str());
  std::printf("%-36s %8s %8s %8s  %s\n", "query (GET, keep-alive, client-side ms)", "p50", "p99",
              "rows", "target p99 < 200 ms");
  KeepAliveClient client("127.0.0.1", port);
  bool all_met = true;
  for (const auto& [name, target] : queries) {
    std::vector<double> ms;
    std::size_t rows = 0;
    for (int i = 0; i < repeat + 2; ++i) {
      const auto start = SteadyClock::now();
      auto reply = client.send("GET", target);
      const double took =
          std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
      if (reply.status != 200)
        throw std::runtime_error(target + " answered " + std::to_string(reply.status));
      if (i < 2) continue;  // warm-up: connection, plan cache
      ms.push_back(took);
      const Json body = Json::parse(reply.body);
      rows = body.contains("runs")        ? body.at("runs").size()
             : body.contains("workflows") ? body.at("workflows").size()
                                          : body.size();
    }
    const auto p = percentiles(ms);
    all_met = all_met && p.p99 < 200;
    std::printf("%-36s %8.1f %8.1f %8zu  %s\n", name.c_str(), p.p50, p.p99, rows,
                p.p99 < 200 ? "met" : "NOT met");
  }
  std::printf("targets: every query p99 < 200 ms [%s]\n", all_met ? "met" : "NOT met");
  return 0;
}

}  // namespace chartflow::bench
