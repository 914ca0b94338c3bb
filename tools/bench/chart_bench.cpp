// `chartflow bench-charts`: issue #3's benchmark. Starts a real `chartflow serve` (this binary,
// a child process with its HTTP listener and workers) on a durable PostgreSQL and uploads the
// charts over HTTP, with a client thread approving every review through the API as soon as it
// appears. It measures
//   - encounter charts completed per second (upload to run finished, reviews auto-approved),
//   - MB/s of whole-history chart JSON completed,
//   - upload-to-completion latency of encounter charts paced at 10/s,
//   - the server's peak RSS while 50 uploads of the largest chart are processed at once,
// and, in the same run, the raw PostgreSQL baseline: the same bytes inserted as jsonb, one commit
// per chart, by the same number of clients, plus pgbench's one-row commit ceiling.
#include "tools/bench/chart_bench.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "auth/tokens.hpp"
#include "runtime/engine.hpp"
#include "runtime/log.hpp"
#include "store/store.hpp"
#include "tools/bench/bench_http.hpp"
#include "tools/bench/bench_util.hpp"

namespace chartflow::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Chart {
  std::string name;
  std::string body;
};

struct Upload {
  std::string chart_id;
  const Chart* chart = nullptr;
};

struct Uploaded {
  std::vector<std::int64_t> run_ids;
  double sent_ms = 0;  // steady clock, ms
  int status = 0;
};

double steady_ms() {
  return std::chrono::duration<double, std::milli>(SteadyClock::now().time_since_epoch()).count();
}

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Charts from each directory of the colon-separated list; a file name seen before is skipped
// (tests/data/charts mirrors ../shared/data/charts).
void load_charts(const std::string& dirs, std::vector<Chart>& encounters,
                 std::vector<Chart>& full) {
  std::set<std::string> seen;
  std::stringstream list(dirs);
  std::string dir;
  while (std::getline(list, dir, ':')) {
    std::error_code ec;
    if (dir.empty() || !std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      const std::string name = f.filename().string();
      if (!seen.insert(name).second) continue;
      if (name.rfind("enc-", 0) == 0) encounters.push_back({name, read_all(f)});
      if (name.rfind("full-", 0) == 0) full.push_back({name, read_all(f)});
    }
  }
}

std::size_t total_bytes(const std::vector<Upload>& uploads) {
  std::size_t n = 0;
  for (const auto& u : uploads) n += u.chart->body.size();
  return n;
}

std::vector<std::int64_t> run_ids_of(const std::vector<Uploaded>& done) {
  std::vector<std::int64_t> out;
  for (const auto& d : done) out.insert(out.end(), d.run_ids.begin(), d.run_ids.end());
  return out;
}

std::string id_array(const std::vector<std::int64_t>& ids) {
  std::string s = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "}";
}

// Uploads every item over `clients` keep-alive connections (items taken in order) and returns
// what each upload answered.
std::vector<Uploaded> upload_all(const std::vector<Upload>& items, int clients, unsigned short port,
                                 const std::string& token) {
  std::vector<Uploaded> out(items.size());
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      KeepAliveClient client("127.0.0.1", port, token);
      for (std::size_t i = next++; i < items.size(); i = next++) {
        out[i].sent_ms = steady_ms();
        auto reply = client.send("PUT", "/v1/charts/" + items[i].chart_id, items[i].chart->body,
                                 "application/fhir+json");
        out[i].status = reply.status;
        if (reply.status != 202) continue;
        const Json answer = Json::parse(reply.body);
        for (const auto& id : answer.at("runs")) out[i].run_ids.push_back(id.get<std::int64_t>());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& u : out)
    if (u.status != 202) throw std::runtime_error("upload answered " + std::to_string(u.status));
  return out;
}

constexpr auto kRunDeadline = std::chrono::minutes(10);

// Waits until every run in `ids` has finished; returns the failed count. Each poll asks only
// for the runs still out, by primary key: a poll over every id by status read the whole
// status index and took CPU from the server being measured.
std::int64_t wait_finished(store::Store& s, std::vector<std::int64_t> ids) {
  const auto deadline = SteadyClock::now() + kRunDeadline;
  std::int64_t failed = 0;
  while (SteadyClock::now() < deadline) {
    Json rows;
    s.with_sql([&](Sql& sql) {
      rows = sql.query("SELECT id, status FROM workflow_run WHERE id = ANY($1::bigint[])",
                       {id_array(ids)});
    });
    std::set<std::int64_t> done;
    for (const auto& row : rows) {
      const std::string status = row.at("status").get<std::string>();
      if (status != "succeeded" && status != "failed" && status != "cancelled") continue;
      done.insert(std::stoll(row.at("id").get<std::string>()));
      if (status != "succeeded") ++failed;
    }
    std::erase_if(ids, [&](std::int64_t id) { return done.count(id) != 0; });
    if (ids.empty()) return failed;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("runs did not finish within 10 minutes");
}

constexpr auto kApproverPoll = std::chrono::milliseconds(10);

// Approves every pending review through the API as soon as it is listed, and notes when it
// first saw each run's review.
class Approver {
 public:
  Approver(unsigned short port, std::string token)
      : port_(port), token_(std::move(token)), thread_([this] { loop(); }) {}
  ~Approver() {
    stop_ = true;
    thread_.join();
  }
  long approved() const { return approved_.load(); }
  std::optional<double> seen_ms(std::int64_t run_id) {
    std::lock_guard lock(mu_);
    auto it = seen_.find(run_id);
    if (it == seen_.end()) return std::nullopt;
    return it->second;
  }

 private:
  void loop() {
    KeepAliveClient client("127.0.0.1", port_, token_);
    while (!stop_) {
      Json reviews = Json::array();
      try {
        auto reply = client.send("GET", "/v1/reviews?status=pending&limit=1000");
        if (reply.status == 200) reviews = Json::parse(reply.body).at("reviews");
      } catch (const std::exception& e) {
        std::cerr << "approver: " << e.what() << "\n";
      }
      const double now = steady_ms();
      for (const auto& r : reviews) {
        const auto& run = r.at("run_id");
        const std::int64_t run_id =
            run.is_string() ? std::stoll(run.get<std::string>()) : run.get<std::int64_t>();
        {
          std::lock_guard lock(mu_);
          seen_.emplace(run_id, now);
        }
        const auto& rid = r.at("id");
        const std::string id = rid.is_string() ? rid.get<std::string>() : rid.dump();
        auto reply = client.send(
            "POST", "/v1/reviews/" + id + "/decision",
            R"({"decision": "approve", "comment": "benchmark", "reason": "benchmark"})");
        if (reply.status == 200) ++approved_;
      }
      // A worklist polled every 10 ms is far more eager than any reviewer's screen, and leaves
      // the two cores to the server instead of to listing an empty worklist.
      if (reviews.empty()) std::this_thread::sleep_for(kApproverPoll);
    }
  }

  unsigned short port_;
  std::string token_;
  std::atomic<bool> stop_{false};
  std::atomic<long> approved_{0};
  std::mutex mu_;
  std::map<std::int64_t, double> seen_;
  std::thread thread_;
};

struct Throughput {
  std::size_t uploads = 0, bytes = 0;
  double upload_s = 0, wall_s = 0;
  std::int64_t failed = 0;
  // CPU seconds the phase cost the server and PostgreSQL (nullopt: not measurable), a figure
  // that holds still on a shared machine where wall time does not.
  double server_cpu_s = 0;
  std::optional<double> postgres_cpu_s;
};

// The processes whose CPU a phase is charged: the server, and an embedded cluster's postmaster
// with its backends.
struct CpuProbe {
  pid_t server = 0;
  std::optional<int> postmaster;
  std::pair<double, std::optional<double>> now() const {
    std::optional<double> pg;
    if (postmaster) pg = cpu_seconds(*postmaster, true);
    return {cpu_seconds(server), pg};
  }
};

Throughput measure_throughput(const std::vector<Upload>& uploads, int clients, unsigned short port,
                              const std::string& token, store::Store& s, const CpuProbe& cpu) {
  Throughput t;
  t.uploads = uploads.size();
  t.bytes = total_bytes(uploads);
  const auto cpu0 = cpu.now();
  const auto t0 = SteadyClock::now();
  auto done = upload_all(uploads, clients, port, token);
  t.upload_s = seconds_since(t0);
  t.failed = wait_finished(s, run_ids_of(done));
  t.wall_s = seconds_since(t0);
  const auto cpu1 = cpu.now();
  t.server_cpu_s = cpu1.first - cpu0.first;
  if (cpu0.second && cpu1.second) t.postgres_cpu_s = *cpu1.second - *cpu0.second;
  return t;
}

// "server 3.1 ms, PostgreSQL 7.2 ms" per upload.
std::string cpu_per_upload(const Throughput& t) {
  const double n = static_cast<double>(std::max<std::size_t>(t.uploads, 1));
  std::string out = fmt::format("server {:.1f} ms", t.server_cpu_s * 1e3 / n);
  out += t.postgres_cpu_s ? fmt::format(", PostgreSQL {:.1f} ms", *t.postgres_cpu_s * 1e3 / n)
                          : ", PostgreSQL not measured (external database)";
  return out;
}

// The baseline: the same bytes stored as jsonb, one commit per chart, `clients` connections.
Throughput raw_insert(const std::vector<Upload>& uploads, int clients, const std::string& dsn,
                      std::vector<double>* latencies_ms = nullptr) {
  store::Store(dsn).with_sql([](Sql& sql) {
    sql.query(
        "CREATE TABLE IF NOT EXISTS bench_chart_raw (id bigserial PRIMARY KEY, chart_id "
        "text NOT NULL, body jsonb NOT NULL)");
    sql.query("TRUNCATE bench_chart_raw");
  });
  Throughput t;
  t.uploads = uploads.size();
  t.bytes = total_bytes(uploads);
  std::vector<double> lat(uploads.size());
  std::atomic<std::size_t> next{0};
  const auto t0 = SteadyClock::now();
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      store::Store s(dsn);
      for (std::size_t i = next++; i < uploads.size(); i = next++) {
        const double start = steady_ms();
        s.with_sql([&](Sql& sql) {
          sql.query("INSERT INTO bench_chart_raw (chart_id, body) VALUES ($1, $2::jsonb)",
                    {uploads[i].chart_id, uploads[i].chart->body});
        });
        lat[i] = steady_ms() - start;
      }
    });
  }
  for (auto& th : threads) th.join();
  t.wall_s = t.upload_s = seconds_since(t0);
  if (latencies_ms) *latencies_ms = lat;
  return t;
}

std::vector<Upload> uploads_of(const std::vector<Chart>& charts, int copies,
                               const std::string& prefix) {
  std::vector<Upload> out;
  for (int r = 0; r < copies; ++r)
    for (std::size_t i = 0; i < charts.size(); ++i)
      out.push_back({prefix + "-" + std::to_string(r) + "-" + std::to_string(i), &charts[i]});
  return out;
}

const char* verdict(bool met) { return met ? "met" : "NOT met"; }

}  // namespace

int run_chart_bench(const Options& options) {
  runtime::Log::set_stderr_level(LogLevel::kWarning);
  const int enc_copies = std::stoi(opt(options, "encounter-copies", "8"));
  const int full_copies = std::stoi(opt(options, "full-copies", "2"));
  // 300: the p99 of 100 samples is their maximum, one hiccup of a shared disk.
  const int paced = std::stoi(opt(options, "paced", "300"));
  const double rate = std::stod(opt(options, "rate", "10"));
  const int clients = std::stoi(opt(options, "clients", "8"));
  const int memory_copies = std::stoi(opt(options, "memory-copies", "50"));
  const std::string workers = opt(options, "workers", std::to_string(runtime::default_workers()));

  std::vector<Chart> encounters, full;
  load_charts(opt(options, "charts", "../shared/data/charts:tests/data/charts"), encounters, full);
  if (encounters.empty() || full.empty())
    throw std::runtime_error(
        "no enc-*.json and full-*.json charts found; pass --charts DIR[:DIR...]");
  const Chart& largest = *std::max_element(
      full.begin(), full.end(), [](auto& a, auto& b) { return a.body.size() < b.body.size(); });

  BenchDatabase db(options, "chartflow-bench-charts");
  const auto work_dir = std::filesystem::temp_directory_path() /
                        ("chartflow-bench-charts-run-" + std::to_string(getpid()));
  std::filesystem::create_directories(work_dir / "bills");
  Sink insurer;
  const unsigned short port = free_port();
  const auto log = work_dir / "serve.log";
  ServerProcess server(
      {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db.dsn(),
       "--workflows", opt(options, "workflows", default_workflows_dir()), "--workers", workers,
       "--batch-size", opt(options, "batch-size", std::to_string(runtime::kDefaultBatchSize)),
       "--network-workers",
       opt(options, "network-workers", std::to_string(runtime::kDefaultBulkheadWorkers)),
       "--log-level", "warning"},
      {"CHARTFLOW_INSURER_URL=http://127.0.0.1:" + std::to_string(insurer.port()) + "/claims",
       "CHARTFLOW_BILL_DIR=" + (work_dir / "bills").string(), "CHARTFLOW_BILL_WEBHOOK_URL="},
      log);
  wait_ready(port, server);
  store::Store store(db.dsn());
  // The server has migrated the database by now; the benchmark acts as an admin.
  std::string token;
  store.with_sql([&](Sql& sql) {
    token = auth::create_token(
                sql, {"bench-charts", "admin", std::nullopt, std::nullopt, "bench-charts"})
                .token;
  });

  std::printf(
      "chartflow chart benchmark: chartflow serve pid %d over HTTP, %s workers, %d "
      "clients; PostgreSQL %s: %s; %u cores\n",
      server.pid(), workers.c_str(), clients, db.embedded() ? "embedded" : "external",
      db.durability().c_str(), std::thread::hardware_concurrency());
  std::printf("charts: %zu encounter, %zu full (largest %.1f MB); server log %s\n",
              encounters.size(), full.size(), largest.body.size() / 1e6, log.c_str());
  std::fflush(stdout);

  Approver approver(port, token);
  const Rss idle = read_rss(server.pid());

  // Warm-up: the first uploads pay for connections and prepared statements.
  const CpuProbe cpu{server.pid(), db.postmaster_pid()};
  measure_throughput(uploads_of(encounters, 1, "warm"), clients, port, token, store, cpu);

  auto enc_uploads = uploads_of(encounters, enc_copies, "enc");
  const auto enc = measure_throughput(enc_uploads, clients, port, token, store, cpu);
  auto full_uploads = uploads_of(full, full_copies, "full");
  const auto whole = measure_throughput(full_uploads, clients, port, token, store, cpu);

  // Paced: one upload every 1/rate s; completion observed by polling every 5 ms.
  std::vector<Upload> paced_uploads;
  paced_uploads.reserve(static_cast<std::size_t>(paced));
  for (int i = 0; i < paced; ++i)
    paced_uploads.push_back({"paced-" + std::to_string(i), &encounters[i % encounters.size()]});
  std::vector<double> latency, to_review;
  {
    std::mutex mu;
    std::map<std::int64_t, double> outstanding;  // run id -> sent at
    std::atomic<bool> sending{true};
    std::int64_t paced_failed = 0;
    std::thread watcher([&] {
      store::Store s(db.dsn());
      while (true) {
        std::vector<std::int64_t> ids;
        {
          std::lock_guard lock(mu);
          for (const auto& [id, _] : outstanding) ids.push_back(id);
        }
        if (ids.empty() && !sending) break;
        if (!ids.empty()) {
          Json rows;
          s.with_sql([&](Sql& sql) {
            rows = sql.query(
                "SELECT id, status FROM workflow_run WHERE id = ANY($1::bigint[]) AND status IN "
                "('succeeded', 'failed', 'cancelled')",
                {id_array(ids)});
          });
          const double now = steady_ms();
          std::lock_guard lock(mu);
          for (const auto& r : rows) {
            const auto id = std::stoll(r.at("id").get<std::string>());
            if (r.at("status").get<std::string>() != "succeeded") ++paced_failed;
            latency.push_back(now - outstanding.at(id));
            if (auto seen = approver.seen_ms(id)) to_review.push_back(*seen - outstanding.at(id));
            outstanding.erase(id);
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    KeepAliveClient client("127.0.0.1", port, token);
    const auto period = std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>(1.0 / rate));
    auto due = SteadyClock::now();
    for (const auto& u : paced_uploads) {
      std::this_thread::sleep_until(due);
      due += period;
      const double sent = steady_ms();
      auto reply =
          client.send("PUT", "/v1/charts/" + u.chart_id, u.chart->body, "application/fhir+json");
      if (reply.status != 202)
        throw std::runtime_error("paced upload answered " + std::to_string(reply.status));
      const Json answer = Json::parse(reply.body);
      std::lock_guard lock(mu);
      for (const auto& id : answer.at("runs")) outstanding[id.get<std::int64_t>()] = sent;
    }
    sending = false;
    watcher.join();
    if (paced_failed > 0) std::printf("paced: %ld runs failed\n", static_cast<long>(paced_failed));
  }
  const auto lat = percentiles(latency);
  const auto review_lat = percentiles(to_review);

  // Memory: every copy of the largest chart uploaded at once, then processed; RSS sampled
  // every 10 ms and the kernel's high-water mark, reset first.
  std::vector<Upload> mem_uploads;
  mem_uploads.reserve(static_cast<std::size_t>(memory_copies));
  for (int i = 0; i < memory_copies; ++i)
    mem_uploads.push_back({"mem-" + std::to_string(i), &largest});
  reset_peak_rss(server.pid());
  const Rss before_mem = read_rss(server.pid());
  std::atomic<bool> sampling{true};
  std::atomic<long> sampled_peak{0};
  std::thread sampler([&] {
    while (sampling) {
      sampled_peak = std::max(sampled_peak.load(), read_rss(server.pid()).current);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const auto mem = measure_throughput(mem_uploads, memory_copies, port, token, store, cpu);
  sampling = false;
  sampler.join();
  const long peak = std::max(read_rss(server.pid()).peak, sampled_peak.load());

  // Baselines on the same cluster, the server idle.
  const auto raw_enc = raw_insert(enc_uploads, clients, db.dsn());
  const auto raw_full = raw_insert(full_uploads, clients, db.dsn());
  std::vector<double> raw_lat;
  raw_insert(paced_uploads, 1, db.dsn(), &raw_lat);
  const auto raw_p = percentiles(raw_lat);
  const auto ceiling = pgbench_ceiling(db.dsn(), 16);

  const double enc_rate = enc.uploads / enc.wall_s;
  const double raw_enc_rate = raw_enc.uploads / raw_enc.wall_s;
  const double full_mbs = whole.bytes / whole.wall_s / 1e6;
  const double raw_full_mbs = raw_full.bytes / raw_full.wall_s / 1e6;
  std::printf("\nencounter charts: %zu uploads (%.1f MB), %.2f s to upload, %.2f s to complete\n",
              enc.uploads, enc.bytes / 1e6, enc.upload_s, enc.wall_s);
  std::printf("  completed charts/s %.0f (uploads accepted/s %.0f); failed runs %ld\n", enc_rate,
              enc.uploads / enc.upload_s, static_cast<long>(enc.failed));
  std::printf("  CPU per chart: %s\n", cpu_per_upload(enc).c_str());
  std::printf(
      "  baseline: the same bytes INSERTed as jsonb, %d clients, one commit each: %.0f/s; "
      "ratio %.2f\n",
      clients, raw_enc_rate, enc_rate / raw_enc_rate);
  std::printf("full charts: %zu uploads (%.1f MB), %.2f s to upload, %.2f s to complete\n",
              whole.uploads, whole.bytes / 1e6, whole.upload_s, whole.wall_s);
  std::printf("  completed MB/s %.1f (%.1f charts/s); failed runs %ld\n", full_mbs,
              whole.uploads / whole.wall_s, static_cast<long>(whole.failed));
  std::printf("  CPU per chart: %s\n", cpu_per_upload(whole).c_str());
  std::printf("  baseline: raw jsonb INSERT of the same bytes: %.1f MB/s; ratio %.2f\n",
              raw_full_mbs, full_mbs / raw_full_mbs);
  std::printf(
      "paced: %d encounter charts at %.0f/s, upload to run completed (review approved "
      "through the API, worklist polled every 10 ms, completion every 5 ms)\n",
      paced, rate);
  std::printf("  ms: p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", lat.p50, lat.p95, lat.p99, lat.max);
  std::printf("  upload to review task listed, ms: p50 %.1f  p99 %.1f\n", review_lat.p50,
              review_lat.p99);
  std::printf(
      "  baseline: one raw jsonb INSERT commit of the same bytes, ms: p50 %.1f  p99 %.1f; "
      "p99 ratio %.1f\n",
      raw_p.p50, raw_p.p99, raw_p.p99 > 0 ? lat.p99 / raw_p.p99 : 0.0);
  std::printf(
      "memory: %d concurrent uploads of the %.1f MB chart, %.2f s to complete, failed "
      "runs %ld\n",
      memory_copies, largest.body.size() / 1e6, mem.wall_s, static_cast<long>(mem.failed));
  std::printf("  server peak RSS %.0f MB (idle after start %.0f MB, before this phase %.0f MB)\n",
              peak / 1e6, idle.current / 1e6, before_mem.current / 1e6);
  if (ceiling)
    std::printf("baseline: pgbench 16-client one-row commits/s on the same cluster: %.0f\n",
                *ceiling);
  std::printf("reviews approved through the API: %ld; insurer notifications received: %ld\n",
              approver.approved(), insurer.requests());
  std::printf(
      "targets: encounter charts/s >= 200 [%s]; full MB/s >= 20 [%s]; paced p99 <= 100 "
      "ms [%s]; peak RSS < 300 MB [%s]\n",
      verdict(enc_rate >= 200), verdict(full_mbs >= 20), verdict(lat.p99 <= 100),
      verdict(peak < 300'000'000));
  std::error_code ec;
  std::filesystem::remove_all(work_dir / "bills", ec);
  return 0;
}

}  // namespace chartflow::bench
