// `chartflow bench`: N events through a 5-step chain of no-op handlers on a durable PostgreSQL
// (the embedded one by default, fsync and synchronous_commit on), then a paced run for latency,
// an idle check, and the same cluster's single-row commit ceiling measured with pgbench, so every
// figure comes with a same-run baseline.
#include "tools/bench/engine_bench.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>

#include "app/modules.hpp"
#include "config/workflow_loader.hpp"
#include "runtime/engine.hpp"
#include "runtime/handler_setup.hpp"
#include "runtime/log.hpp"
#include "store/store.hpp"
#include "tools/bench/bench_util.hpp"

namespace chartflow::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr const char* kChain = R"(
name: bench-chain
on: [{ event: bench.chain }]
steps:
  scan: { handler: noop }
  review: { handler: noop, needs: [scan] }
  billing: { handler: noop, needs: [review] }
  insurance: { handler: noop, needs: [billing] }
  close: { handler: noop, needs: [insurance] }
)";

// Event-to-completion latencies (ms) of the runs with ids in [first, last], from the database.
std::vector<double> run_latencies(store::Store& s, std::int64_t first, std::int64_t last) {
  std::vector<double> out;
  Json rows;
  s.with_sql([&](Sql& sql) {
    rows = sql.query(
        "SELECT extract(epoch FROM finished_at - e.created_at) * 1000 AS ms FROM workflow_run r "
        "JOIN event e ON e.id = r.event_id WHERE r.id BETWEEN $1 AND $2 AND r.status = "
        "'succeeded'",
        {std::to_string(first), std::to_string(last)});
  });
  for (const auto& r : rows) out.push_back(std::stod(r.at("ms").get<std::string>()));
  return out;
}

std::int64_t count_done(store::Store& s, std::int64_t first, std::int64_t last) {
  Json rows;
  s.with_sql([&](Sql& sql) {
    rows = sql.query(
        "SELECT count(*) AS n FROM workflow_run WHERE id BETWEEN $1 AND $2 AND status IN "
        "('succeeded', 'failed')",
        {std::to_string(first), std::to_string(last)});
  });
  return std::stoll(rows[0].at("n").get<std::string>());
}

}  // namespace

int run_engine_bench(const std::map<std::string, std::string>& options) {
  runtime::Log::set_stderr_level(LogLevel::kWarning);
  const int runs = std::stoi(opt(options, "runs", "10000"));
  const int paced_runs = std::stoi(opt(options, "paced-runs", "200"));
  const double rate = std::stod(opt(options, "rate", "20"));
  const int workers =
      std::stoi(opt(options, "workers", std::to_string(runtime::default_workers())));
  const int batch_size =
      std::stoi(opt(options, "batch-size", std::to_string(runtime::kDefaultBatchSize)));

  BenchDatabase db(options, "chartflow-bench");
  const std::string& dsn = db.dsn();
  store::Store store(dsn);

  auto handlers = app::make_modules("workflows")->handler_registry();
  auto registry = std::make_shared<runtime::WorkflowRegistry>();
  auto loaded =
      config::load_workflow_text(kChain, "bench-chain.yaml", runtime::handler_check(*handlers));
  if (!loaded.workflow) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    return 1;
  }
  registry->publish(store, {*loaded.workflow});
  // Database time by kind of round trip (the burst's is printed): where the
  // engine waits. Set before any engine thread runs.
  std::mutex profile_mu;
  std::map<std::string, std::pair<long, double>, std::less<>> profile;  // kind -> calls, seconds
  store::Store::set_query_observer([&](std::string_view kind, double secs) {
    std::lock_guard lock(profile_mu);
    auto& p = profile[std::string(kind)];
    ++p.first;
    p.second += secs;
  });
  runtime::EngineSettings settings;
  settings.dsn = dsn;
  settings.workers = workers;
  settings.batch_size = batch_size;
  // The chart module's handlers are registered, so its network bulkhead has workers too (idle
  // here: the chain's handlers are general); 0 shows what they cost.
  if (auto n = options.find("network-workers"); n != options.end())
    settings.bulkhead_workers[kNetworkBulkhead] = std::stoi(n->second);
  runtime::Engine engine(settings, handlers, registry);
  engine.start();

  std::cout << "chartflow engine benchmark\n";
  std::cout << "  machine: " << std::thread::hardware_concurrency() << " cores; PostgreSQL "
            << (db.embedded() ? "embedded" : "external") << ":";
  std::cout << " " << db.durability();
  std::cout << "\n  workers=" << workers << " batch-size=" << batch_size << "\n";

  // Burst: every event enqueued as fast as `producers` threads can, then drained.
  auto ingest_one = [&](int i) {
    store::EventInput ev;
    ev.type = "bench.chain";
    ev.body = {{"n", i}};
    return engine.ingest(std::move(ev)).run_ids.at(0);
  };
  // Like the peers' benchmark, the burst is bulk-inserted in chunks of 500 events.
  constexpr int kChunk = 500;
  std::int64_t first_id = 0, last_id = 0;
  using Profile = std::map<std::string, std::pair<long, double>, std::less<>>;
  auto snapshot = [&] {
    std::lock_guard lock(profile_mu);
    return profile;
  };
  auto since = [&](Profile before) {
    Profile now = snapshot();
    for (auto& [kind, p] : now) {
      p.first -= before[kind].first;
      p.second -= before[kind].second;
    }
    return now;
  };
  const Profile before_burst = snapshot();
  const auto t0 = SteadyClock::now();
  for (int start = 0; start < runs; start += kChunk) {
    std::vector<store::EventInput> chunk;
    for (int i = start; i < std::min(runs, start + kChunk); ++i) {
      store::EventInput ev;
      ev.type = "bench.chain";
      ev.body = {{"n", i}};
      chunk.push_back(std::move(ev));
    }
    auto results = engine.ingest_batch(chunk);
    if (start == 0) first_id = results.front().run_ids.at(0);
    last_id = results.back().run_ids.at(0);
  }
  const double enqueue_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  while (count_done(store, first_id, last_id) < runs)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double wall_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const Profile burst_profile = since(before_burst);
  auto burst_lat = percentiles(run_latencies(store, first_id, last_id));
  const double runs_per_s = runs / wall_s;
  const double steps_per_s = runs * 5 / wall_s;

  // Paced: events arrive one at a time at `rate` per second, well below saturation.
  std::int64_t paced_first = 0, paced_last = 0;
  const Profile before_paced = snapshot();
  const auto period = std::chrono::duration<double>(1.0 / rate);
  auto due = SteadyClock::now();
  for (int i = 0; i < paced_runs; ++i) {
    std::this_thread::sleep_until(due);
    auto id = ingest_one(i);
    if (i == 0) paced_first = id;
    paced_last = id;
    due += std::chrono::duration_cast<SteadyClock::duration>(period);
  }
  while (count_done(store, paced_first, paced_last) < paced_runs)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto paced_lat = percentiles(run_latencies(store, paced_first, paced_last));
  const Profile paced_profile = since(before_paced);

  // Idle: statements the engine sends while nothing happens.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto q0 = store::Store::statements_issued();
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const double idle_qps = (store::Store::statements_issued() - q0) / 5.0;
  engine.drain();
  store::Store::set_query_observer(nullptr);

  auto ceil1 = pgbench_ceiling(dsn, 1);
  auto ceil16 = pgbench_ceiling(dsn, 16);

  std::printf("\nburst: %d five-step runs, enqueue %.2fs, wall %.2fs\n", runs, enqueue_s, wall_s);
  std::printf("  runs/s %.0f   steps/s %.0f\n", runs_per_s, steps_per_s);
  std::printf("  event-to-completion ms: p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", burst_lat.p50,
              burst_lat.p95, burst_lat.p99, burst_lat.max);
  std::printf("paced: %d runs at %.0f runs/s\n", paced_runs, rate);
  std::printf("  event-to-completion ms: p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", paced_lat.p50,
              paced_lat.p95, paced_lat.p99, paced_lat.max);
  std::printf("idle: %.1f statements/s\n", idle_qps);
  auto print_profile = [](const char* phase, const Profile& prof, int phase_runs) {
    std::printf(
        "%s database round trips by kind (calls, per step, mean ms, total s over all "
        "threads):\n",
        phase);
    for (const auto& [kind, p] : prof)
      if (p.first > 0)
        std::printf("  %-14s %8ld %6.2f %7.3f %7.2f\n", kind.c_str(), p.first,
                    static_cast<double>(p.first) / (phase_runs * 5.0), p.second * 1000 / p.first,
                    p.second);
  };
  print_profile("burst", burst_profile, runs);
  print_profile("paced", paced_profile, paced_runs);
  if (ceil1 && ceil16) {
    std::printf(
        "baseline (same cluster, same run): pgbench one-row commits/s: 1 client %.0f, "
        "16 clients %.0f\n",
        *ceil1, *ceil16);
    std::printf(
        "ratios: steps/s / 16-client commit ceiling = %.2f; steps per durable commit "
        "slot at 1 client = %.2f\n",
        steps_per_s / *ceil16, steps_per_s / *ceil1);
  }
  if (auto peer = options.find("graphile-jobs-per-s"); peer != options.end()) {
    const double g = std::stod(peer->second);
    std::printf("ratio vs graphile-worker chain (same run, %.0f jobs/s): %.2fx\n", g,
                steps_per_s / g);
  }
  std::printf(
      "targets: steps/s >= 5000 [%s]; paced p99 <= 15 ms [%s]; idle <= 1 statement/s [%s]\n",
      steps_per_s >= 5000 ? "met" : "NOT met", paced_lat.p99 <= 15 ? "met" : "NOT met",
      idle_qps <= 1.0 ? "met" : "NOT met");
  return 0;
}

}  // namespace chartflow::bench
