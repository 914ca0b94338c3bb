// deploy/'s Prometheus files are valid for the Prometheus that Debian ships: the alert rules
// load (expressions parse, durations and labels are well-formed) and pass their own tests, and
// the scrape config as shipped, with the rule files it names, passes promtool.
#include <gtest/gtest.h>

#include <filesystem>
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

// The rules' own unit tests (promtool test rules): each alert fires on the series it is for.
TEST(PrometheusConfig, AlertRulesFireAsTheirTestsExpect) {
  const std::string tool = promtool();
  ASSERT_FALSE(tool.empty()) << kNoPromtool;
  namespace fs = std::filesystem;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(std::string(CHARTFLOW_SOURCE_DIR) +
                                                  "/tests/unit/testdata/prometheus")) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with("_test.yml")) continue;
    ++files;
    auto r = run_command(tool + " test rules " + entry.path().string());
    EXPECT_EQ(r.exit_code, 0) << name << ":\n" << r.output;
    EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << name << ":\n" << r.output;
  }
  EXPECT_GE(files, 2) << "the rules' tests are missing";
}

// As shipped: credentials_file is relative to the config's folder and names deploy/chartflow-token,
// a placeholder, so promtool (which insists the file exists) passes on the file itself.
TEST(PrometheusConfig, ScrapeConfigPassesPromtoolAsShipped) {
  const std::string tool = promtool();
  ASSERT_FALSE(tool.empty()) << kNoPromtool;
  auto r = run_command(tool + " check config " + kDeploy + "prometheus.yml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // The config names alert-rules.yml; promtool checks it too, so a missing file fails here.
  EXPECT_NE(r.output.find("alert-rules.yml"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace chartflow::testing
