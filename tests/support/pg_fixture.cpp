#include "tests/support/pg_fixture.hpp"

#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "handlers/chart_migrations.hpp"
#include "store/store.hpp"

namespace chartflow::testing {

std::string base_dsn() {
  const char* env = std::getenv("CHARTFLOW_TEST_DSN");
  if (env == nullptr || *env == '\0') {
    ADD_FAILURE() << "CHARTFLOW_TEST_DSN is not set: start a test database with "
                     "deploy/start_test_postgres.sh (deploy/test.sh does it for you)";
    return "";
  }
  return env;
}

void PgTest::SetUp() {
  const std::string base = cluster_dsn();
  ASSERT_FALSE(base.empty());
  std::random_device rd;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->name());
  for (auto& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  schema_ = "t_" + name.substr(0, 30) + "_" + std::to_string(rd() % 1000000);
  for (auto& c : schema_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  {
    pqxx::connection c(base);
    pqxx::work tx(c);
    tx.exec("CREATE SCHEMA " + c.quote_name(schema_));
    tx.commit();
  }
  dsn_ = base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
         schema_;
  // The engine's tables and the chart application's, as the chartflow binary migrates them.
  store::Store s(dsn_);
  s.migrate({handlers::chart_migrations()});
}

void PgTest::TearDown() {
  if (schema_.empty() || std::getenv("CHARTFLOW_TEST_KEEP_SCHEMA")) return;
  try {
    pqxx::connection c(cluster_dsn());
    pqxx::work tx(c);
    tx.exec("DROP SCHEMA " + c.quote_name(schema_) + " CASCADE");
    tx.commit();
  } catch (const std::exception&) {
    // A schema left behind costs nothing in a throwaway cluster.
  }
}

std::string PgTest::scalar(const std::string& sql) {
  pqxx::connection c(dsn_);
  pqxx::work tx(c);
  auto r = tx.exec(sql);
  tx.commit();
  if (r.empty() || r[0][0].is_null()) return "";
  return r[0][0].c_str();
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

}  // namespace chartflow::testing
