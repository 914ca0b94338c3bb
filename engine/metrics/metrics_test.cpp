// Issue #14 item 11: the HTTP method was a label as sent, so 30 made-up methods made 30 series.
#include "metrics/metrics.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace chartflow::metrics
