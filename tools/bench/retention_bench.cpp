// `chartflow bench-retention`: the claim's speed with a large history, and what one expiry costs
// and frees. On a fresh database (embedded, fsync on, unless --database-url): a burst of
// five-step no-op runs through a real engine with no history (the baseline, same run); then
// --step-rows step rows of finished runs (10 million by default, with a history row each),
// 90% in the archive spread over twelve months and 10% still in the hot tables, as a year of
// a busy hospital's runs would be; the same burst again (the ratio is the claim's speed with
// that history against without); then one expiry of the six oldest months, timed, with the
// database's size before and after.
#include "tools/bench/retention_bench.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "app/modules.hpp"
#include "config/workflow_loader.hpp"
#include "runtime/engine.hpp"
#include "runtime/handler_setup.hpp"
#include "runtime/log.hpp"
#include "store/retention_store.hpp"
#include "store/store.hpp"
#include "tools/bench/bench_util.hpp"

namespace chartflow::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr const char* kChain = R"(
name: bench-retention
on: [{ event: bench.retention }]
steps:
  scan: { handler: noop }
  review: { handler: noop, needs: [scan] }
  billing: { handler: noop, needs: [review] }
  insurance: { handler: noop, needs: [billing] }
  close: { handler: noop, needs: [insurance] }
)";

constexpr int kStepsPerRun = 10;

std::int64_t scalar(store::Store& s, const std::string& q) {
  Json rows;
  s.with_sql([&](Sql& sql) { rows = sql.query(q, {}); });
  return std::stoll(rows.at(0).begin()->get<std::string>());
}

// Steps per second of a burst of `runs` five-step runs, enqueued in chunks and drained.
double burst(runtime::Engine& engine, store::Store& s, int runs) {
  const auto t0 = SteadyClock::now();
  std::int64_t first = 0, last = 0;
  for (int start = 0; start < runs; start += 500) {
    std::vector<store::EventInput> chunk;
    for (int i = start; i < std::min(runs, start + 500); ++i) {
      store::EventInput ev;
      ev.type = "bench.retention";
      ev.body = {{"n", i}};
      chunk.push_back(std::move(ev));
    }
    auto results = engine.ingest_batch(chunk);
    if (start == 0) first = results.front().run_ids.at(0);
    last = results.back().run_ids.at(0);
  }
  const std::string done = fmt::format(
      "SELECT count(*) FROM workflow_run WHERE id BETWEEN {} AND {} AND status = 'succeeded'",
      first, last);
  while (scalar(s, done) < runs) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return runs * 5 / std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// A year of finished runs of ten steps, each step with a history row: `runs` of them, finished
// evenly over the last 360 days, in chunks (each statement well inside the store's call
// deadline). The runs that finished more than 36 days ago (90%) go into the archive months they
// finished in, as the archiver would have moved them (built in temporary tables shaped like the
// hot ones, so defaults apply and the hot tables get no dead rows); the rest into the hot tables.
void seed_history(store::Store& s, std::int64_t runs) {
  // At least 40 chunks, so the months split between archive and hot as the runs do.
  const std::int64_t chunk = std::clamp<std::int64_t>(runs / 40, 1, 25'000);
  s.with_sql([&](Sql& sql) {
    sql.query(
        "INSERT INTO workflow_version (name, version, content_hash, definition, source_file) "
        "VALUES ('bench-history', 1, 'bench-history', '{}', 'bench')");
    for (const char* t : {"event", "workflow_run", "step_run", "run_history"})
      sql.query(fmt::format("CREATE TEMP TABLE seed_{0} (LIKE {0} INCLUDING DEFAULTS)", t));
  });
  for (std::int64_t lo = 1; lo <= runs; lo += chunk) {
    const std::int64_t hi = std::min(runs, lo + chunk - 1);
    // The chunk's last run tells where it goes: archived chunks are all older than 36 days but
    // the one across the line, which goes hot whole.
    const bool archived = hi * 360 / runs < 360 - 36;
    // {0}: the table prefix (seed_ while archived), {1}..{2}: the chunk's numbers, {3}: all
    // runs, {4}: steps per run.
    const auto q = [&](const char* text) {
      return fmt::format(fmt::runtime(text), archived ? "seed_" : "", lo, hi, runs, kStepsPerRun);
    };
    s.with_sql([&](Sql& sql) {
      for (const char* t : {"event", "workflow_run", "step_run", "run_history"})
        sql.query(fmt::format("TRUNCATE seed_{}", t));
      sql.query(
          q("INSERT INTO {0}event (type, body, source, created_at) SELECT 'bench.history', "
            "jsonb_build_object('chart_id', 'chart-' || g % 20000, 'n', g), 'bench', now() - "
            "interval '360 days' + g * interval '360 days' / {3} FROM generate_series({1}, "
            "{2}) g"));
      sql.query(
          q("INSERT INTO {0}workflow_run (workflow_version_id, workflow, event_id, status, "
            "remaining_steps, subject, created_at, started_at, finished_at) SELECT v.id, "
            "'bench-history', e.id, 'succeeded', 0, e.body->>'chart_id', e.created_at, "
            "e.created_at, e.created_at FROM {0}event e, workflow_version v WHERE e.type = "
            "'bench.history' AND v.name = 'bench-history' AND (e.body->>'n')::bigint BETWEEN {1} "
            "AND {2}"));
      sql.query(
          q("INSERT INTO {0}step_run (run_id, step_key, handler, status, pending_needs, "
            "max_attempts, timeout_ms, run_at, started_at, finished_at, output) SELECT r.id, "
            "'step-' || k, 'noop', 'succeeded', 0, 3, 30000, r.created_at, r.created_at, "
            "r.created_at, '{{\"ok\": true}}' FROM {0}workflow_run r, generate_series(1, {4}) k "
            "WHERE r.workflow = 'bench-history' AND r.event_id IN (SELECT id FROM {0}event WHERE "
            "(body->>'n')::bigint BETWEEN {1} AND {2})"));
      sql.query(
          q("INSERT INTO {0}run_history (run_id, at, type, step, attempt) SELECT r.id, "
            "r.created_at, 'succeeded', 'step-' || k, 1 FROM {0}workflow_run r, "
            "generate_series(1, {4}) k WHERE r.workflow = 'bench-history' AND r.event_id IN "
            "(SELECT id FROM {0}event WHERE (body->>'n')::bigint BETWEEN {1} AND {2})"));
      if (!archived) return;
      // Into the months they finished in, as retention_archive files them.
      sql.query(
          "SELECT retention_partition(t, m) FROM (SELECT DISTINCT date_trunc('month', "
          "r.finished_at)::date AS m FROM seed_workflow_run r) ms, "
          "unnest(ARRAY['workflow_run_archive', 'step_run_archive', 'run_history_archive', "
          "'run_signal_archive', 'event_archive']) t");
      sql.query(
          "INSERT INTO event_archive SELECT date_trunc('month', r.finished_at)::date, e.* FROM "
          "seed_event e JOIN seed_workflow_run r ON r.event_id = e.id");
      sql.query(
          "INSERT INTO workflow_run_archive SELECT date_trunc('month', r.finished_at)::date, r.* "
          "FROM seed_workflow_run r");
      sql.query(
          "INSERT INTO step_run_archive SELECT date_trunc('month', r.finished_at)::date, x.* "
          "FROM seed_step_run x JOIN seed_workflow_run r ON r.id = x.run_id");
      sql.query(
          "INSERT INTO run_history_archive SELECT date_trunc('month', r.finished_at)::date, h.* "
          "FROM seed_run_history h JOIN seed_workflow_run r ON r.id = h.run_id");
    });
  }
  s.with_autocommit_sql([&](Sql& sql) { sql.query("ANALYZE"); });
}

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace

int run_retention_bench(const std::map<std::string, std::string>& options) {
  runtime::Log::set_stderr_level(LogLevel::kWarning);
  const std::int64_t step_rows = std::stoll(opt(options, "step-rows", "10000000"));
  const int runs = std::stoi(opt(options, "runs", "4000"));

  BenchDatabase db(options, "chartflow-bench-retention");
  store::Store store(db.dsn());
  auto handlers = app::make_modules("workflows")->handler_registry();
  auto registry = std::make_shared<runtime::WorkflowRegistry>();
  auto loaded =
      config::load_workflow_text(kChain, "bench-retention.yaml", runtime::handler_check(*handlers));
  if (!loaded.workflow) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    return 1;
  }
  registry->publish(store, {*loaded.workflow});
  runtime::EngineSettings settings;
  settings.dsn = db.dsn();
  runtime::Engine engine(settings, handlers, registry);
  engine.start();

  std::cout << "chartflow retention benchmark\n  machine: " << std::thread::hardware_concurrency()
            << " cores; PostgreSQL " << (db.embedded() ? "embedded" : "external") << ": "
            << db.durability() << "\n";
  // Three bursts each side, the median compared: one burst on this shared machine can be off by
  // a third either way.
  auto bursts = [&](const char* label) {
    std::vector<double> rates;
    rates.reserve(3);
    for (int i = 0; i < 3; ++i) rates.push_back(burst(engine, store, runs));
    std::printf("%s %6.0f %6.0f %6.0f steps/s", label, rates[0], rates[1], rates[2]);
    std::sort(rates.begin(), rates.end());
    std::printf("  median %6.0f (%d five-step runs each)\n", rates[1], runs);
    return rates[1];
  };
  burst(engine, store, std::min(runs, 500));  // warm-up: connections, plans, caches
  const double empty = bursts("claim, no history:      ");

  const auto t_seed = SteadyClock::now();
  seed_history(store, step_rows / kStepsPerRun);
  std::printf("history seeded:           %lld step rows (+ as many history rows) in %.0f s\n",
              static_cast<long long>(step_rows), seconds_since(t_seed));
  const double full = bursts("claim, with the history:");
  std::printf("ratio of the medians, with the history / without: %.2f (1.00: unchanged)\n",
              full / empty);
  engine.drain();

  const std::int64_t before = scalar(store, "SELECT pg_database_size(current_database())");
  store::RetentionPolicy policy;
  policy.runs = std::chrono::hours(24 * 180);
  const auto t_expire = SteadyClock::now();
  Json out;
  store.with_sql([&](Sql& sql) { out = store::expire_partitions(sql, policy, false); });
  const double expire_s = seconds_since(t_expire);
  const std::int64_t after = scalar(store, "SELECT pg_database_size(current_database())");
  std::int64_t rows = 0;
  for (const auto& d : out["dropped"]) rows += d["rows_estimate"].get<std::int64_t>();
  std::printf("expiry of the months older than 180 days: %zu partitions, ~%lld rows, %.2f s\n",
              out["dropped"].size(), static_cast<long long>(rows), expire_s);
  std::printf("database size: %.1f MiB before, %.1f MiB after (%.1f MiB given back)\n",
              before / 1048576.0, after / 1048576.0, (before - after) / 1048576.0);
  return 0;
}

}  // namespace chartflow::bench
