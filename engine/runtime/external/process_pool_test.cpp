// Issue #16 item 6: a handler's pool reported its size only once a step used it, so
// chartflow_handler_processes had no series for a handler that had not run since the start.
#include "runtime/external/process_pool.hpp"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

namespace chartflow::runtime::external {
namespace {

TEST(HandlerPoolTest, ReportsItsSizeAtZeroWhenCreated) {
  std::vector<std::tuple<std::string, int, int>> reports;
  PoolHooks hooks;
  hooks.pool_size = [&reports](const std::string& handler, int warm, int busy) {
    reports.emplace_back(handler, warm, busy);
  };
  ExternalSpec spec;
  spec.name = "greet";
  spec.argv = {"/bin/true"};
  HandlerPool pool(spec, hooks, [] {});
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], std::make_tuple(std::string("greet"), 0, 0));
}

}  // namespace
}  // namespace chartflow::runtime::external
