// Test support: a PostgreSQL cluster of the test's own with durability on (fsync,
// synchronous_commit, full_page_writes). The shared test cluster runs with all three off for
// speed, so a crash test on it could not tell a committed row from one the server only had in
// memory. Made by deploy/start_test_postgres.sh (which, as root, runs it as `postgres`) on a free
// port, switched to durable settings, and stopped and deleted at destruction.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "tests/support/child_process.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::testing {

class DurableCluster {
 public:
  DurableCluster() : dir_(std::make_unique<TempDir>("cf-durable")) {
    const std::string scripts = std::string(CHARTFLOW_SOURCE_DIR) + "/deploy/";
    const auto started =
        run_command("CHARTFLOW_TEST_PG_PORT=" + std::to_string(free_port()) + " bash " + scripts +
                    "start_test_postgres.sh '" + cluster_dir().string() + "'");
    if (started.exit_code != 0) {
      ADD_FAILURE() << "start_test_postgres.sh failed:\n" << started.output;
      return;
    }
    std::string out = started.output;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    dsn_ = out.substr(out.find_last_of('\n') + 1);
    try {
      pqxx::connection c(dsn_);
      pqxx::nontransaction tx(c);  // ALTER SYSTEM refuses a transaction block
      for (const char* setting : {"fsync", "synchronous_commit", "full_page_writes"})
        tx.exec(std::string("ALTER SYSTEM SET ") + setting + " = on");
      tx.exec("SELECT pg_reload_conf()");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot make the cluster durable: " << e.what();
      dsn_.clear();
      return;
    }
    // The postmaster applies a reload asynchronously; new sessions see it once it has.
    if (!wait_until([&] { return setting("fsync") == "on"; }, std::chrono::seconds(10)))
      ADD_FAILURE() << "fsync is still " << setting("fsync") << " after the reload";
  }
  ~DurableCluster() {
    run_command("bash " + std::string(CHARTFLOW_SOURCE_DIR) + "/deploy/stop_test_postgres.sh '" +
                cluster_dir().string() + "'");
  }
  DurableCluster(const DurableCluster&) = delete;
  DurableCluster& operator=(const DurableCluster&) = delete;

  // "" when the cluster could not be started (the test has failed already).
  const std::string& dsn() const { return dsn_; }

  // What a new session of the cluster reports for `name` (SHOW), or the error.
  std::string setting(const std::string& name) const {
    try {
      pqxx::connection c(dsn_);
      pqxx::nontransaction tx(c);
      return tx.exec("SHOW " + c.quote_name(name))[0][0].c_str();
    } catch (const std::exception& e) {
      return std::string("error: ") + e.what();
    }
  }

 private:
  std::filesystem::path cluster_dir() const { return dir_->path() / "pg"; }

  std::unique_ptr<TempDir> dir_;
  std::string dsn_;
};

}  // namespace chartflow::testing
