// Issue #14 item 11: the HTTP method was a label as sent, so 30 made-up methods made 30 series.
// Issue #16 item 6: counters appeared at their first increment, so increase() never counted the
// first run, step or expiration after a start, and alerts summing over them saw no series.
#include "metrics/metrics.hpp"

#include <gtest/gtest.h>

#include "core/workflow.hpp"

namespace chartflow::metrics {
namespace {

TEST(MetricsTest, MadeUpHttpMethodsShareOneOtherSeries) {
  Metrics m;
  for (int i = 0; i < 30; ++i) m.http_request("unmatched", "X" + std::to_string(i), 405, 0.001);
  m.http_request("healthz", "GET", 200, 0.001);
  const std::string text = m.serialize();
  EXPECT_EQ(text.find("method=\"X1"), std::string::npos) << text;
  EXPECT_NE(text.find("method=\"other\""), std::string::npos);
  EXPECT_NE(text.find("method=\"GET\""), std::string::npos);
  std::size_t series = 0;
  for (auto pos = text.find("chartflow_http_requests_total{"); pos != std::string::npos;
       pos = text.find("chartflow_http_requests_total{", pos + 1))
    ++series;
  EXPECT_EQ(series, 2u) << text;
}

TEST(MetricsTest, EmbeddedPostgresRestartsAreACounterFromZero) {
  Metrics m;
  EXPECT_EQ(m.serialize().find("chartflow_embedded_postgres_restarts_total 0"), std::string::npos)
      << "no series in a process without an embedded PostgreSQL";
  m.embedded_postgres_restarts(0);
  EXPECT_NE(m.serialize().find("chartflow_embedded_postgres_restarts_total 0"), std::string::npos);
  m.embedded_postgres_restarts();
  EXPECT_NE(m.serialize().find("chartflow_embedded_postgres_restarts_total 1"), std::string::npos)
      << m.serialize();
}

TEST(MetricsTest, StepExpirationsAreSeriesAtZeroFromStart) {
  const std::string text = Metrics().serialize();
  EXPECT_NE(text.find("chartflow_step_expirations_total{reason=\"lease\"} 0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("chartflow_step_expirations_total{reason=\"timeout\"} 0\n"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, ADeclaredWorkflowHasItsRunAndStepSeriesAtZero) {
  core::Workflow wf;
  wf.name = "chart-intake";
  for (const char* name : {"validate", "store"}) {
    core::Step step;
    step.name = name;
    wf.steps.push_back(step);
  }
  Metrics m;
  m.declare_workflow(wf);
  std::string text = m.serialize();
  for (const std::string series : {
           R"(chartflow_runs_started_total{workflow="chart-intake"} 0)",
           R"(chartflow_runs_finished_total{status="succeeded",workflow="chart-intake"} 0)",
           R"(chartflow_runs_finished_total{status="failed",workflow="chart-intake"} 0)",
           R"(chartflow_step_duration_seconds_count{step="validate",workflow="chart-intake"} 0)",
           R"(chartflow_step_duration_seconds_count{step="store",workflow="chart-intake"} 0)",
           R"(chartflow_step_retries_total{step="store",workflow="chart-intake"} 0)",
       })
    EXPECT_NE(text.find(series + "\n"), std::string::npos) << series << " missing in\n" << text;

  // The first run counts from 0, in the series declared (not a second one).
  m.run_started("chart-intake");
  m.run_finished("chart-intake", "succeeded");
  m.step_finished("chart-intake", "validate", 0.01);
  text = m.serialize();
  EXPECT_NE(text.find(R"(chartflow_runs_started_total{workflow="chart-intake"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(R"(chartflow_runs_finished_total{status="succeeded",workflow="chart-intake"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(chartflow_step_duration_seconds_count{step="validate",workflow="chart-intake"} 1)"),
      std::string::npos)
      << text;
}

TEST(MetricsTest, AHandlerReportedOnceHasItsProcessesAndColdStartsAtZero) {
  Metrics m;
  m.handler_pool("greet", 0, 0);
  const std::string text = m.serialize();
  for (const std::string series : {
           R"(chartflow_handler_processes{handler="greet",state="warm"} 0)",
           R"(chartflow_handler_processes{handler="greet",state="busy"} 0)",
           R"(chartflow_handler_cold_starts_total{handler="greet"} 0)",
       })
    EXPECT_NE(text.find(series + "\n"), std::string::npos) << series << " missing in\n" << text;
}

}  // namespace
}  // namespace chartflow::metrics
