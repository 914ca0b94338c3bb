// `chartflow-bench bench-hang`: issue #15 item 6's measure. A real `chartflow serve` (child
// process, default workers, workflows/chart-update.yaml) on a durable PostgreSQL, with an insurer
// endpoint that stops answering for --hang-s seconds while encounter charts are uploaded at
// --rate per second. The figure is how late each chart's scan started (step started_at minus the
// run's created_at, both the database's clock), before the hang and during it. Two phases, each
// on a database of its own in the same cluster: "before", the server with --network-workers 0
// (insurer calls share the general workers, as before bulkheads; or --before-binary, another
// build without them), and "after", with its network bulkhead.
#include "tools/bench/hang_bench.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "auth/tokens.hpp"
#include "runtime/log.hpp"
#include "store/store.hpp"
#include "tools/bench/bench_http.hpp"

namespace chartflow::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

// An insurer endpoint that answers 200 until told to hang; then it reads each request and holds
// the connection without a word (the caller waits out its own timeout), until told to answer
// again, when the held connections are closed.
class Insurer {
 public:
  Insurer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 256) != 0)
      throw std::runtime_error("insurer: cannot listen");
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~Insurer() {
    stop_ = true;
    thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(fd_);
  }
  unsigned short port() const { return port_; }
  void hang(bool on) { hanging_ = on; }
  long answered() const { return answered_.load(); }
  long held() const { return held_count_.load(); }

 private:
  void loop() {
    static const std::string kReply =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        "Connection: close\r\n\r\n{}";
    while (!stop_) {
      if (!hanging_ && !held_.empty()) {
        for (int fd : held_) ::close(fd);
        held_.clear();
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept(fd_, nullptr, nullptr);
      if (fd < 0) continue;
      read_request(fd);
      if (hanging_) {
        held_.push_back(fd);
        ++held_count_;
        continue;
      }
      ::send(fd, kReply.data(), kReply.size(), MSG_NOSIGNAL);
      ::close(fd);
      ++answered_;
    }
  }
  static void read_request(int fd) {
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string in;
    char buf[16384];
    std::size_t need = std::string::npos;
    while (in.size() < need) {
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<std::size_t>(n));
      const auto head_end = in.find("\r\n\r\n");
      if (head_end == std::string::npos || need != std::string::npos) continue;
      std::string head = in.substr(0, head_end);
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::size_t length = 0;
      if (auto at = head.find("content-length:"); at != std::string::npos)
        length = std::stoul(head.substr(at + 15));
      need = head_end + 4 + length;
    }
  }

  int fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false}, hanging_{false};
  std::atomic<long> answered_{0}, held_count_{0};
  std::vector<int> held_;  // the loop thread's only
  std::thread thread_;
};

std::vector<std::string> encounter_charts(const std::string& dirs) {
  std::vector<std::string> out;
  std::stringstream list(dirs);
  for (std::string dir; std::getline(list, dir, ':');) {
    std::error_code ec;
    if (dir.empty() || !std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".json" && e.path().filename().string().rfind("enc-", 0) == 0)
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      out.push_back(s.str());
    }
    if (!out.empty()) return out;
  }
  throw std::runtime_error("no enc-*.json charts found; pass --charts DIR[:DIR...]");
}

std::string id_array(const std::vector<std::int64_t>& ids) {
  std::string s = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "}";
}

struct Phase {
  std::string name, server_args;
  Latency quiet, hang;  // scan start after upload, ms
  std::size_t quiet_charts = 0, hang_charts = 0;
  long insurer_held = 0;
  double hang_claims = 0, hang_probes = 0;  // the server's claim and probe statements meanwhile
};

// The server's count of `kind` round trips so far (its /metrics).
double query_count(unsigned short port, const std::string& token, const std::string& kind) {
  KeepAliveClient c("127.0.0.1", port, token);
  std::istringstream text(c.send("GET", "/metrics").body);
  const std::string prefix = "chartflow_db_query_duration_seconds_count{kind=\"" + kind + "\"}";
  for (std::string line; std::getline(text, line);)
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size()));
  return 0;
}

class Uploader {
 public:
  Uploader(unsigned short port, const std::string& token, const std::vector<std::string>& charts,
           std::string prefix)
      : client_("127.0.0.1", port, token), charts_(charts), prefix_(std::move(prefix)) {}
  // Uploads one chart every 1/rate s for `seconds`; returns the runs started.
  std::vector<std::int64_t> paced(double rate, double seconds) {
    std::vector<std::int64_t> runs;
    const auto period = std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>(1.0 / rate));
    const auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                              std::chrono::duration<double>(seconds));
    for (auto due = SteadyClock::now(); due < end; due += period) {
      std::this_thread::sleep_until(due);
      const auto& body = charts_[n_ % charts_.size()];
      auto reply = client_.send("PUT", "/v1/charts/" + prefix_ + "-" + std::to_string(n_++), body,
                                "application/fhir+json");
      if (reply.status != 202)
        throw std::runtime_error("upload answered " + std::to_string(reply.status));
      // Named: a range-for over a member of a temporary reads freed memory.
      const Json answer = Json::parse(reply.body);
      for (const auto& id : answer.at("runs")) runs.push_back(id.get<std::int64_t>());
    }
    return runs;
  }

 private:
  KeepAliveClient client_;
  const std::vector<std::string>& charts_;
  std::string prefix_;
  std::size_t n_ = 0;
};

// The runs' scan start latencies (ms), once every scan has finished.
std::vector<double> scan_latencies(store::Store& s, const std::vector<std::int64_t>& runs) {
  const auto deadline = SteadyClock::now() + std::chrono::minutes(5);
  while (SteadyClock::now() < deadline) {
    Json rows;
    s.with_sql([&](Sql& sql) {
      rows = sql.query(
          "SELECT extract(epoch FROM s.started_at - r.created_at) * 1000 AS ms FROM step_run s "
          "JOIN workflow_run r ON r.id = s.run_id WHERE s.run_id = ANY($1::bigint[]) AND "
          "s.step_key = 'scan' AND s.status IN ('succeeded', 'failed', 'skipped')",
          {id_array(runs)});
    });
    if (rows.size() == runs.size()) {
      std::vector<double> out;
      for (const auto& r : rows) out.push_back(std::stod(r.at("ms").get<std::string>()));
      return out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("scans did not finish within 5 minutes");
}

// The benchmark's database DSN with another database named (libpq takes the last dbname given).
std::string with_database(const std::string& dsn, const std::string& db) {
  if (dsn.rfind("postgres", 0) == 0)
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + "dbname=" + db;
  return dsn + " dbname=" + db;
}

Phase run_phase(const Options& options, const std::string& base_dsn, const std::string& name,
                const std::vector<std::string>& server_args, const std::string& binary,
                const std::vector<std::string>& charts) {
  const std::string db = "chartflow_bench_hang_" + name;
  store::Store(base_dsn).with_autocommit_sql([&](Sql& sql) {
    sql.query("DROP DATABASE IF EXISTS " + db);
    sql.query("CREATE DATABASE " + db);
  });
  const std::string dsn = with_database(base_dsn, db);
  const auto work = std::filesystem::temp_directory_path() /
                    fmt::format("chartflow-bench-hang-{}-{}", getpid(), name);
  std::filesystem::create_directories(work / "bills");
  Insurer insurer;
  const unsigned short port = free_port();
  std::vector<std::string> args = {"serve",
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(port),
                                   "--database-url",
                                   dsn,
                                   "--workflows",
                                   opt(options, "workflows", default_workflows_dir()),
                                   "--log-level",
                                   "error"};
  if (auto w = options.find("workers"); w != options.end())
    args.insert(args.end(), {"--workers", w->second});
  args.insert(args.end(), server_args.begin(), server_args.end());
  Phase out;
  out.name = name;
  for (const auto& a : server_args) out.server_args += (out.server_args.empty() ? "" : " ") + a;
  if (!binary.empty()) out.server_args += (out.server_args.empty() ? "" : " ") + binary;
  {
    ServerProcess server(
        args,
        {"CHARTFLOW_INSURER_URL=http://127.0.0.1:" + std::to_string(insurer.port()) + "/claims",
         "CHARTFLOW_BILL_DIR=" + (work / "bills").string(), "CHARTFLOW_BILL_WEBHOOK_URL="},
        work / "serve.log", binary);
    wait_ready(port, server);
    store::Store store(dsn);
    std::string token;
    store.with_sql([&](Sql& sql) {
      token =
          auth::create_token(sql, {"bench-hang", "admin", std::nullopt, std::nullopt, "bench-hang"})
              .token;
    });
    const double rate = std::stod(opt(options, "rate", "10"));
    Uploader up(port, token, charts, name);
    // Warm-up: connections, prepared statements, the chart cache.
    scan_latencies(store, up.paced(rate, 2));
    const auto quiet_runs = up.paced(rate, std::stod(opt(options, "quiet-s", "5")));
    const double claims0 = query_count(port, token, "claim");
    const double probes0 = query_count(port, token, "probe");
    insurer.hang(true);
    const auto hang_runs = up.paced(rate, std::stod(opt(options, "hang-s", "17")));
    insurer.hang(false);
    out.hang_claims = query_count(port, token, "claim") - claims0;
    out.hang_probes = query_count(port, token, "probe") - probes0;
    out.quiet = percentiles(scan_latencies(store, quiet_runs));
    out.hang = percentiles(scan_latencies(store, hang_runs));
    out.quiet_charts = quiet_runs.size();
    out.hang_charts = hang_runs.size();
    out.insurer_held = insurer.held();
  }
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
  return out;
}

void print_phase(const Phase& p) {
  std::printf("%s (%s):\n", p.name.c_str(), p.server_args.c_str());
  std::printf("  insurer answering, %zu charts: scan start ms p50 %.1f  p99 %.1f  max %.1f\n",
              p.quiet_charts, p.quiet.p50, p.quiet.p99, p.quiet.max);
  std::printf("  insurer hanging,   %zu charts: scan start ms p50 %.1f  p99 %.1f  max %.1f\n",
              p.hang_charts, p.hang.p50, p.hang.p99, p.hang.max);
  std::printf("  insurer calls left hanging: %ld; while it hung: %.0f claims, %.0f probes\n",
              p.insurer_held, p.hang_claims, p.hang_probes);
  std::fflush(stdout);
}

}  // namespace

int run_hang_bench(const Options& options) {
  runtime::Log::set_stderr_level(LogLevel::kWarning);
  const auto charts =
      encounter_charts(opt(options, "charts", "../shared/data/charts:tests/data/charts"));
  BenchDatabase db(options, "chartflow-bench-hang");
  const std::string network = opt(options, "network-workers", "4");
  std::printf(
      "chartflow hang benchmark: an insurer that stops answering for %s s (calls time out after "
      "insurers.yaml's timeout) while %zu encounter charts are uploaded at %s/s; scan start = "
      "the scan step's start minus its run's creation; PostgreSQL %s: %s; %u cores\n",
      opt(options, "hang-s", "17").c_str(), charts.size(), opt(options, "rate", "10").c_str(),
      db.embedded() ? "embedded" : "external", db.durability().c_str(),
      std::thread::hardware_concurrency());
  std::fflush(stdout);
  const std::string before_binary = opt(options, "before-binary", "");
  const auto before =
      run_phase(options, db.dsn(), "before",
                before_binary.empty() ? std::vector<std::string>{"--network-workers", "0"}
                                      : std::vector<std::string>{},
                before_binary, charts);
  print_phase(before);
  const auto after =
      run_phase(options, db.dsn(), "after", {"--network-workers", network}, "", charts);
  print_phase(after);
  std::printf(
      "scan start p99 while the insurer hangs: before %.1f ms, after %.1f ms; ratio %.1fx\n",
      before.hang.p99, after.hang.p99, after.hang.p99 > 0 ? before.hang.p99 / after.hang.p99 : 0.0);
  return 0;
}

}  // namespace chartflow::bench
