// deploy/'s Prometheus files are valid for the Prometheus that Debian ships: the alert rules
// load (expressions parse, durations and labels are well-formed) and the scrape config, with
// the rule files it names, passes promtool.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
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
  auto r = run_command(tool + " test rules " + std::string(CHARTFLOW_SOURCE_DIR) +
                       "/tests/unit/testdata/prometheus/parked_alert_test.yml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

TEST(PrometheusConfig, ScrapeConfigPassesPromtool) {
  const std::string tool = promtool();
  ASSERT_FALSE(tool.empty()) << kNoPromtool;
  // promtool insists the bearer token file exists: check a copy that points at a scratch one.
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("chartflow-promcfg-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kDeploy + "alert-rules.yml", dir / "alert-rules.yml",
                fs::copy_options::overwrite_existing);
  std::ifstream in(kDeploy + "prometheus.yml");
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  const std::string token_file = "credentials_file: /etc/prometheus/chartflow-token";
  const auto at = config.find(token_file);
  ASSERT_NE(at, std::string::npos) << "prometheus.yml no longer names " << token_file;
  config.replace(at, token_file.size(), "credentials_file: " + (dir / "token").string());
  std::ofstream(dir / "token") << "cft_test\n";
  std::ofstream(dir / "prometheus.yml") << config;
  auto r = run_command(tool + " check config " + (dir / "prometheus.yml").string());
  fs::remove_all(dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // The config names alert-rules.yml; promtool checks it too, so a missing file fails here.
  EXPECT_NE(r.output.find("alert-rules.yml"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace chartflow::testing
