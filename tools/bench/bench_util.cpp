#include "tools/bench/bench_util.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include "app/modules.hpp"
#include "runtime/embedded_postgres.hpp"
#include "store/store.hpp"

namespace chartflow::bench {
namespace {

// Parses libpq "key=value" connection strings (the embedded server's form) for pgbench.
std::map<std::string, std::string> dsn_parts(const std::string& dsn) {
  std::map<std::string, std::string> out;
  std::regex kv(R"((\w+)=(\S+))");
  for (auto it = std::sregex_iterator(dsn.begin(), dsn.end(), kv); it != std::sregex_iterator();
       ++it)
    out[(*it)[1]] = (*it)[2];
  return out;
}

}  // namespace

std::string opt(const Options& o, const std::string& key, const std::string& def) {
  auto it = o.find(key);
  return it == o.end() ? def : it->second;
}

std::string default_workflows_dir() {
  if (std::filesystem::is_directory("workflows")) return "workflows";
  return std::string(CHARTFLOW_SOURCE_DIR) + "/workflows";
}

Latency percentiles(std::vector<double> v) {
  Latency l;
  if (v.empty()) return l;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))];
  };
  l.p50 = at(0.50);
  l.p95 = at(0.95);
  l.p99 = at(0.99);
  l.max = v.back();
  return l;
}

BenchDatabase::BenchDatabase(const Options& options, const std::string& name) {
  dsn_ = opt(options, "database-url", "");
  if (dsn_.empty()) {
    remove_ = !options.count("data-dir");
    data_dir_ =
        opt(options, "data-dir",
            (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(getpid())))
                .string());
    embedded_ = std::make_unique<runtime::EmbeddedPostgres>(data_dir_);
    dsn_ = embedded_->start();
  }
  store::Store(dsn_).migrate(app::module_migrations());
}

BenchDatabase::~BenchDatabase() {
  if (!embedded_) return;
  embedded_->stop();
  embedded_.reset();
  std::error_code ec;
  if (remove_) std::filesystem::remove_all(data_dir_, ec);
}

std::optional<int> BenchDatabase::postmaster_pid() const {
  if (!embedded_) return std::nullopt;
  // PGDATA is <data dir>/pg/data (runtime/embedded_postgres.hpp); the pid file's first line.
  std::ifstream in(data_dir_ / "pg" / "data" / "postmaster.pid");
  int pid = 0;
  if (in >> pid && pid > 0) return pid;
  return std::nullopt;
}

std::string BenchDatabase::durability() const {
  Json rows;
  store::Store(dsn_).with_sql([&](Sql& sql) {
    rows = sql.query(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
        "'full_page_writes') ORDER BY name");
  });
  std::string out;
  for (const auto& r : rows)
    out += (out.empty() ? "" : " ") + r.at("name").get<std::string>() + "=" +
           r.at("setting").get<std::string>();
  return out;
}

std::optional<double> pgbench_ceiling(const std::string& dsn, int clients) {
  const std::string pgbench = "/usr/lib/postgresql/15/bin/pgbench";
  if (!std::filesystem::exists(pgbench)) return std::nullopt;
  store::Store s(dsn);
  s.with_sql([](Sql& sql) {
    sql.query("CREATE TABLE IF NOT EXISTS bench_ceiling (id bigserial PRIMARY KEY, v int)");
    sql.query("TRUNCATE bench_ceiling");
  });
  const auto script = std::filesystem::temp_directory_path() / "chartflow_ceil_1row.sql";
  {
    std::FILE* f = std::fopen(script.c_str(), "w");
    if (!f) return std::nullopt;
    std::fputs("INSERT INTO bench_ceiling (v) VALUES (1);\n", f);
    std::fclose(f);
  }
  auto parts = dsn_parts(dsn);
  std::string cmd = pgbench + " -n -M prepared -T 5 -c " + std::to_string(clients) + " -j " +
                    std::to_string(std::min(clients, 2)) + " -f " + script.string();
  if (parts.count("host")) cmd += " -h " + parts["host"];
  if (parts.count("port")) cmd += " -p " + parts["port"];
  if (parts.count("user")) cmd += " -U " + parts["user"];
  cmd += " " + (parts.count("dbname") ? parts["dbname"] : std::string("chartflow")) + " 2>&1";
  std::FILE* p = popen(cmd.c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(tps = ([0-9.]+))"))) return std::stod(m[1]);
  std::cerr << "pgbench failed: " << out << "\n";
  return std::nullopt;
}

}  // namespace chartflow::bench
