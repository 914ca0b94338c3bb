// The retry policy of insurers.yaml (issue #15, item 7): the shipped configuration rides out an
// insurer outage of hours before the step parks for an operator, and a bad policy is an error
// naming the file, the line and the key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>

#include "config/workflow_loader.hpp"
#include "engine/util/duration.hpp"
#include "handlers/chart_settings.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/insurance/insurer_settings.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers::insurance {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

double millis(const Json& policy, const char* key) {
  return static_cast<double>(core::parse_duration(policy.at(key).get<std::string>())->count());
}

// The least time a step spends waiting before its last attempt under a capped exponential
// backoff: every draw of the jitter at its lowest.
double least_wait_hours(double initial_ms, double max_ms, double multiplier, double jitter,
                        int max_attempts) {
  double total = 0;
  for (int failed = 1; failed < max_attempts; ++failed)
    total += std::min(initial_ms * std::pow(multiplier, failed - 1), max_ms) * (1 - jitter);
  return total / 3'600'000;
}

TEST(InsurerRetry, APayorsPolicyOverridesTheFileDefaultKeyByKey) {
  const auto s = InsurerSettings::from_json(Json::parse(R"({
    "retry": {"initial": "1s", "max": "5m", "multiplier": 3, "jitter": 0.1},
    "payors": {
      "medicare": {"url": "http://127.0.0.1:9/claims", "retry": {"max": "1h"}},
      "self-pay": {"skip": true},
      "default": {"url": "http://127.0.0.1:9/claims"}}})"));
  const auto& medicare = s.retry_for("Medicare");  // payor names match case-insensitively
  EXPECT_EQ(medicare.initial, std::chrono::seconds(1));
  EXPECT_EQ(medicare.max, std::chrono::hours(1));
  EXPECT_EQ(medicare.multiplier, 3.0);
  EXPECT_EQ(medicare.jitter, 0.1);
  const auto& other = s.retry_for("acme");  // falls to `default`, which has the file's policy
  EXPECT_EQ(other.initial, std::chrono::seconds(1));
  EXPECT_EQ(other.max, std::chrono::minutes(5));
  // Without insurers.yaml: the built-in policy.
  EXPECT_EQ(InsurerSettings{}.retry_for("acme").max, kDefaultInsurerRetry.max);
}

TEST(InsurerRetry, DelaysFollowThePolicyWithJitterBoundedAndCapped) {
  const auto s = InsurerSettings::from_json(Json::parse(R"({
    "retry": {"initial": "100ms", "max": "1s", "multiplier": 2, "jitter": 0.25},
    "payors": {"default": {"url": "http://127.0.0.1:9/claims"},
               "slow": {"url": "http://127.0.0.1:9/claims", "retry": {"initial": "800ms"}}}})"));
  for (int attempt = 1; attempt <= 12; ++attempt) {
    const double base = std::min(100.0 * std::pow(2.0, attempt - 1), 1000.0);
    for (double u : {0.0, 0.3, 0.5, 0.999}) {
      const double d = static_cast<double>(s.retry_delay({"acme"}, attempt, u).count());
      EXPECT_GE(d, std::floor(base * 0.75)) << "attempt " << attempt << " u " << u;
      EXPECT_LE(d, std::min(base * 1.25, 1000.0)) << "attempt " << attempt << " u " << u;
    }
  }
  // Several payors failed: the step waits as long as the most patient of their policies says.
  EXPECT_EQ(s.retry_delay({"acme", "slow"}, 1, 0.5), std::chrono::milliseconds(800));
  EXPECT_EQ(s.retry_delay({}, 1, 0.5), std::chrono::milliseconds(100));
}

// The chart workflow and insurers.yaml as shipped: an insurer (or bill receiver) down for hours
// is retried for hours, then the step parks instead of failing the run. (Before: eight attempts
// over about 63 s, then the run failed.)
TEST(InsurerRetry, ShippedSettingsRideOutHoursThenPark) {
  const auto loaded =
      config::load_workflow_file(testing::workflows_dir() / "chart-update.yaml", {});
  ASSERT_TRUE(loaded.workflow) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
  const Json definition = loaded.workflow->to_json();
  const Json insurers = load_config_file(testing::workflows_dir() / "settings/insurers.yaml");
  ASSERT_TRUE(insurers.contains("retry")) << "insurers.yaml sets no retry policy";
  const Json& policy = insurers.at("retry");

  // Every step that reaches an insurer or a bill receiver, or issues the bill.
  int outside = 0;
  for (const auto& step : definition.at("steps")) {
    const std::string handler = step.at("handler").at("name");
    if (handler != "insurance" && handler != "discharge" && handler != "bill_send") continue;
    ++outside;
    const std::string name = step.at("name");
    EXPECT_EQ(step.value("on_exhausted", "fail"), "park") << name;
    const Json& retry = step.at("retry");
    const int attempts = retry.at("max_attempts").get<int>();
    // The insurance handler waits as the payor's policy says; the others as their step's.
    const double hours = handler == "insurance"
                             ? least_wait_hours(millis(policy, "initial"), millis(policy, "max"),
                                                policy.value("multiplier", 2.0),
                                                policy.value("jitter", 0.2), attempts)
                             : least_wait_hours(retry.at("initial_ms").get<double>(),
                                                retry.at("max_ms").get<double>(),
                                                retry.at("multiplier").get<double>(),
                                                retry.at("jitter").get<double>(), attempts);
    EXPECT_GE(hours, 2.0) << name << " gives up after " << hours * 60 << " min";
  }
  EXPECT_GE(outside, 2) << "chart-update.yaml has no insurance or discharge step";
}

TEST(InsurerRetry, ABadPolicyIsAnErrorNamingTheFileLineAndKey) {
  chartflow::testing::TempDir dir("chartflow-insurer-retry");
  std::filesystem::create_directories(dir.path() / "settings");
  const std::string file = (dir.path() / "settings" / "insurers.yaml").string();
  auto load_with = [&](const std::string& yaml) {
    std::ofstream(file) << yaml;
    return error_of([&] { load_chart_settings(dir.path()); });
  };
  EXPECT_THAT(load_with("timeout: 10s\n"
                        "retry: { initial: 1s, max: soon }\n"),
              HasSubstr(file + ":2: retry.max: "));
  EXPECT_THAT(
      load_with("retry: { initial: 1s }\n"
                "payors:\n"
                "  medicare:\n"
                "    url: http://127.0.0.1:9/claims\n"
                "    retry:\n"
                "      jitter: 2\n"),
      AllOf(HasSubstr(file + ":6: payors.medicare.retry.jitter: "), HasSubstr("from 0 to 1")));
  EXPECT_THAT(load_with("payors:\n"
                        "  default:\n"
                        "    url: http://127.0.0.1:9/claims\n"
                        "    retry: { initial: 1m, max: 30s }\n"),
              AllOf(HasSubstr(file + ":4: payors.default.retry: "),
                    HasSubstr("initial (60s) must not exceed max (30s)")));
  EXPECT_THAT(load_with("retry:\n"
                        "  initial: 1s\n"
                        "  attempts: 5\n"),
              HasSubstr(file + ":3: retry.attempts: unknown setting"));
  EXPECT_THAT(load_with("retry: { multiplier: 0.5 }\n"),
              HasSubstr(file + ":1: retry.multiplier: "));
}

}  // namespace
}  // namespace chartflow::handlers::insurance
