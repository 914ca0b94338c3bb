// Helpers shared by the benchmark commands (`chartflow bench`, `bench-charts`, `bench-dashboard`):
// option lookup, percentiles and the same-run PostgreSQL baseline measured with pgbench.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace chartflow::runtime {
class EmbeddedPostgres;
}  // namespace chartflow::runtime

namespace chartflow::bench {

using Options = std::map<std::string, std::string>;

std::string opt(const Options& o, const std::string& key, const std::string& def);

// ./workflows when it exists, else the source tree's.
std::string default_workflows_dir();

struct Latency {
  double p50 = 0, p95 = 0, p99 = 0, max = 0;
};

Latency percentiles(std::vector<double> values);

// pgbench's single-row INSERT commits/s with `clients` clients against `dsn` (5 s), or nullopt
// when pgbench is not installed or fails.
// The benchmark's PostgreSQL: --database-url as given, else an embedded cluster (fsync and
// synchronous_commit on) under --data-dir or a temporary directory that is removed afterwards.
class BenchDatabase {
 public:
  BenchDatabase(const Options& options, const std::string& name);
  ~BenchDatabase();
  BenchDatabase(const BenchDatabase&) = delete;
  BenchDatabase& operator=(const BenchDatabase&) = delete;
  const std::string& dsn() const { return dsn_; }
  bool embedded() const { return embedded_ != nullptr; }
  // The embedded cluster's postmaster, whose children are every backend; nullopt for a
  // --database-url, whose processes the benchmark cannot tell from others'.
  std::optional<int> postmaster_pid() const;
  // The fsync, synchronous_commit and full_page_writes settings, as "name=value ...".
  std::string durability() const;

 private:
  std::unique_ptr<runtime::EmbeddedPostgres> embedded_;
  std::string dsn_;
  std::filesystem::path data_dir_;
  bool remove_ = false;
};

std::optional<double> pgbench_ceiling(const std::string& dsn, int clients);

}  // namespace chartflow::bench
