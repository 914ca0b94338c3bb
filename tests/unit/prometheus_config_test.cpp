// deploy/'s Prometheus files are valid for the Prometheus that Debian ships: the alert rules
// load (expressions parse, durations and labels are well-formed) and the scrape config, with
// the rule files it names, passes promtool.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/run_command.hpp"

namespace chartflow::testing {
namespace {

const std::string kDeploy = std::string(CHARTFLOW_SOURCE_DIR) + "/deploy/";

TEST(PrometheusConfig, AlertRulesPassPromtool) {
  const std::string tool = promtool();
  ASSERT_FALSE(tool.empty()) << kNoPromtool;
  auto r = run_command(tool + " check rules " + kDeploy + "alert-rules.yml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

TEST(PrometheusConfig, ScrapeConfigPassesPromtool) {
  const std::string tool = promtool();
  ASSERT_FALSE(tool.empty()) << kNoPromtool;
  auto r = run_command(tool + " check config " + kDeploy + "prometheus.yml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // The config names alert-rules.yml; promtool checks it too, so a missing file fails here.
  EXPECT_NE(r.output.find("alert-rules.yml"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace chartflow::testing
