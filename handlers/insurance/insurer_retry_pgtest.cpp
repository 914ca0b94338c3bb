// An insurer outage longer than the old budget of eight attempts (about 63 s) does not fail the
// chart's run (issue #15, item 7): the insurance step waits between attempts as its payor's
// retry policy in insurers.yaml says, through the shipped chart workflow. The policy here is
// scaled down (a 200 ms cap instead of minutes) so that 20 failed deliveries take seconds.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/chart_module.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::handlers {
namespace {

using chartflow::testing::FakeHttpServer;
using chartflow::testing::ReceivedRequest;

constexpr int kOutage = 20;  // failed deliveries before the insurer is back
constexpr double kInitialMs = 20, kMaxMs = 200, kJitter = 0.5;

class InsurerRetryTest : public chartflow::testing::PgTest {};

TEST_F(InsurerRetryTest, AnOutageLongerThanTheOldBudgetDelaysTheStepByThePayorsPolicy) {
  FakeHttpServer insurer([](const ReceivedRequest&, int i) { return i < kOutage ? 500 : 200; });
  auto handlers = std::make_shared<HandlerRegistry>();
  ChartHandlerOptions options;
  options.insurers = Json{
      {"timeout", "2s"},
      {"payors",
       {{"default",
         {{"url", insurer.url("/claims")},
          {"retry", {{"initial", "20ms"}, {"max", "200ms"}, {"multiplier", 2}, {"jitter", 0.5}}}}},
        {"no_insurance", {{"skip", true}}}}}};
  register_chart_handlers(*handlers, testing::workflows_dir(), options);
  const std::string workflow = testing::read_file(testing::workflows_dir() / "chart-update.yaml");
  chartflow::testing::EngineHarness h(dsn(), {workflow}, handlers);
  h.start();

  const std::string raw =
      testing::read_file(testing::charts_dir() /
                         "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  Json bundle = Json::parse(raw);
  StoredRevision stored;
  h.store().with_sql(
      [&](Sql& sql) { stored = store_revision(sql, "lemuel-outage", raw, bundle, "tablet"); });
  const auto run_id =
      h.start_run("chart.uploaded", chart_event_body(bundle, "lemuel-outage", stored.revision));
  ASSERT_TRUE(chartflow::testing::wait_until(
      [&] { return h.step(run_id, "insurance").value("status", "") == "succeeded"; },
      std::chrono::seconds(60)))
      << h.run(run_id).dump();
  EXPECT_NE(h.run_status(run_id), "failed");
  EXPECT_GE(h.step(run_id, "insurance").value("attempts", 0), kOutage + 1);
  EXPECT_GE(static_cast<int>(insurer.requests().size()), kOutage + 1);

  // Each wait follows the payor's policy for that attempt, jitter within its bounds.
  int retries = 0;
  const Json run = h.run(run_id);  // kept alive for the loop
  for (const auto& e : run.at("history")) {
    if (e.value("type", "") != "retried" || e.at("step") != "insurance") continue;
    ++retries;
    const int attempt = e.value("attempt", 0);
    const double base = std::min(kInitialMs * std::pow(2.0, attempt - 1), kMaxMs);
    const auto delay = e.at("detail").value("delay_ms", -1.0);
    EXPECT_GE(delay, std::floor(base * (1 - kJitter))) << "attempt " << attempt;
    EXPECT_LE(delay, std::min(base * (1 + kJitter), kMaxMs)) << "attempt " << attempt;
  }
  EXPECT_EQ(retries, kOutage);
}

}  // namespace
}  // namespace chartflow::handlers
