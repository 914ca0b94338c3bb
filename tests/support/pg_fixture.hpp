// Test support: each test gets a fresh, migrated schema in the database named by
// CHARTFLOW_TEST_DSN and a DSN whose search_path holds only that schema, so tests cannot see
// each other's rows. The schema is dropped at teardown.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

namespace chartflow::testing {

// The base DSN, or skips... no: fails the test with a clear message when it is missing.
std::string base_dsn();

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // DSN for the test's own schema (libpq URL with options=-csearch_path=...).
  const std::string& dsn() const { return dsn_; }
  const std::string& schema() const { return schema_; }
  // Runs one SQL statement in the test schema and returns the first column of the first row
  // as text ("" when no row or NULL).
  std::string scalar(const std::string& sql);
  // The cluster the test's schema lives in: the shared test cluster unless a test brings its own.
  virtual std::string cluster_dsn() const { return base_dsn(); }

 private:
  std::string schema_;
  std::string dsn_;
};

// Polls `cond` until it holds or `timeout` passes; never a bare sleep in a test.
bool wait_until(const std::function<bool()>& cond,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace chartflow::testing
