#include "handlers/common/chart_cache.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "engine/util/hash.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/testing/chart_test_data.hpp"

namespace chartflow::handlers {
namespace {

// Answers the two chart_revision queries the cache makes, from an in-memory map.
class FakeRevisionSql : public Sql {
 public:
  std::map<std::pair<std::string, std::string>, std::string> bodies;  // (chart, rev) -> text
  std::atomic<int> body_queries{0};
  std::atomic<int> hash_queries{0};

  Json query(std::string_view statement,
             const std::vector<std::optional<std::string>>& params) override {
    auto it = bodies.find({params.at(0).value(), params.at(1).value()});
    if (it == bodies.end()) return Json::array();
    if (statement.find("body::text") != std::string_view::npos) {
      ++body_queries;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // widen the race window
      return Json::array({Json{{"body", it->second}}});
    }
    ++hash_queries;
    return Json::array({Json{{"content_hash", util::sha256_hex(it->second)}}});
  }
};

TEST(ChartCacheTest, LoadsOnceAndSharesIdenticalContentAcrossCharts) {
  const std::string text =
      testing::read_file(testing::charts_dir() /
                         "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  FakeRevisionSql sql;
  sql.bodies[{"a", "1"}] = text;
  sql.bodies[{"b", "1"}] = text;
  ChartCache cache;
  auto first = cache.load(sql, "a", 1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->index.of_type("Encounter").size(), 1U);
  auto again = cache.load(sql, "a", 1);
  auto other_chart = cache.load(sql, "b", 1);
  EXPECT_EQ(first.get(), again.get());
  EXPECT_EQ(first.get(), other_chart.get());
  EXPECT_EQ(sql.body_queries.load(), 1);
  EXPECT_EQ(cache.load(sql, "a", 2), nullptr);
}

// The hash a chart.uploaded event carries spares the hash query; on a miss the body is still
// read by (chart_id, revision), and a revision that does not exist is still nullptr.
TEST(ChartCacheTest, KnownHashSkipsTheHashQuery) {
  const std::string text =
      testing::read_file(testing::charts_dir() /
                         "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  FakeRevisionSql sql;
  sql.bodies[{"a", "1"}] = text;
  ChartCache cache;
  const std::string hash = util::sha256_hex(text);
  auto first = cache.load(sql, "a", 1, hash);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->content_hash, hash);
  EXPECT_EQ(sql.body_queries.load(), 1);
  auto again = cache.load(sql, "a", 1, hash);
  EXPECT_EQ(first.get(), again.get());
  EXPECT_EQ(sql.body_queries.load(), 1);
  EXPECT_EQ(sql.hash_queries.load(), 0);
  EXPECT_EQ(cache.load(sql, "missing", 1, std::string(64, 'f')), nullptr);
}

TEST(ChartCacheTest, ConcurrentMissesParseOnce) {
  const std::string text =
      testing::read_file(testing::charts_dir() / "full-clemente-kreiger-1484a42d.json");
  FakeRevisionSql sql;
  sql.bodies[{"c", "1"}] = text;
  ChartCache cache;
  std::vector<std::thread> threads;
  std::vector<ChartPtr> results(8);
  threads.reserve(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = cache.load(sql, "c", 1); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(sql.body_queries.load(), 1);
  for (const auto& r : results) EXPECT_EQ(r.get(), results[0].get());
}

TEST(ChartCacheTest, EvictsLeastRecentlyUsed) {
  FakeRevisionSql sql;
  for (int i = 0; i < 4; ++i) {
    sql.bodies[{"c" + std::to_string(i), "1"}] =
        "{\"resourceType\":\"Bundle\",\"id\":\"" + std::to_string(i) + "\"}";
  }
  ChartCache cache(2, 1 << 20);
  auto c0 = cache.load(sql, "c0", 1);
  cache.load(sql, "c1", 1);
  cache.load(sql, "c0", 1);  // c0 is now the most recent
  cache.load(sql, "c2", 1);  // evicts c1
  EXPECT_EQ(cache.size(), 2U);
  const int before = sql.body_queries.load();
  cache.load(sql, "c0", 1);
  EXPECT_EQ(sql.body_queries.load(), before);
  cache.load(sql, "c1", 1);
  EXPECT_EQ(sql.body_queries.load(), before + 1);
  EXPECT_EQ(c0->bundle["id"], "0");  // an evicted entry stays valid for its holders

  ChartCache tiny(10, 10);  // byte budget smaller than one entry: keeps just the newest
  tiny.load(sql, "c0", 1);
  tiny.load(sql, "c1", 1);
  EXPECT_EQ(tiny.size(), 1U);
}

TEST(ConfigFileTest, YamlScalarsAndEnvironment) {
  auto dir =
      std::filesystem::temp_directory_path() / ("chartflow-cfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "s.yaml");
    out << "a: 1\nb: 2.5\nc: true\nd: ~\ne: \"007\"\nf: text\ng: [1, x]\nh: 1e3\ni: '-'\n";
  }
  Json j = load_config_file(dir / "s.yaml");
  EXPECT_EQ(j["a"], 1);
  EXPECT_EQ(j["b"], 2.5);
  EXPECT_EQ(j["c"], true);
  EXPECT_TRUE(j["d"].is_null());
  EXPECT_EQ(j["e"], "007");
  EXPECT_EQ(j["f"], "text");
  EXPECT_EQ(j["g"], Json::array({1, "x"}));
  EXPECT_EQ(j["h"], 1000.0);
  EXPECT_EQ(j["i"], "-");
  {
    std::ofstream out(dir / "bad.yaml");
    out << "a: [1, 2\n";
  }
  EXPECT_THROW(load_config_file(dir / "bad.yaml"), std::invalid_argument);
  EXPECT_THROW(load_config_file(dir / "missing.yaml"), std::invalid_argument);
  std::filesystem::remove_all(dir);

  ::setenv("CHARTFLOW_TEST_VALUE", "v", 1);
  ::unsetenv("CHARTFLOW_TEST_UNSET_VARIABLE");
  EXPECT_EQ(expand_env("x${CHARTFLOW_TEST_VALUE}y"), "xvy");
  EXPECT_EQ(expand_env("${CHARTFLOW_TEST_UNSET_VARIABLE}"), "");
  EXPECT_EQ(expand_env("${CHARTFLOW_TEST_UNSET_VARIABLE:-/tmp/d}"), "/tmp/d");
  EXPECT_EQ(expand_env("${CHARTFLOW_TEST_VALUE:-/tmp/d}"), "v");
  EXPECT_EQ(expand_env("$HOME ${unclosed"), "$HOME ${unclosed");
}

}  // namespace
}  // namespace chartflow::handlers
