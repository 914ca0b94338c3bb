// The fhir-subscriptions settings (issue #18 part 1): what a subscription needs, what is refused
// and how the error names the key.
#include "handlers/fhir_subscriptions/subscription_settings.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "handlers/chart_settings.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using ::testing::HasSubstr;

class SubscriptionSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("cf-fhir-settings-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_ / "settings");
    secret_ = (dir_ / "secret").string();
    std::ofstream(secret_) << "s3cret-of-the-ehr\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string error_of(const Json& j) {
    try {
      SubscriptionSettings::from_json(j);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(accepted)";
  }
  std::filesystem::path dir_;
  std::string secret_;
};

TEST_F(SubscriptionSettingsTest, ReadsASubscription) {
  Json entry = {{"name", "ehr"},
                {"secret_file", secret_},
                {"header", "X-EHR-Secret"},
                {"fhir_base_url", "http://127.0.0.1:9/fhir/"},
                {"events_operation", true}};
  const auto s = SubscriptionSettings::from_json(
      Json{{"timeout", "5s"}, {"subscriptions", Json::array({entry})}});
  ASSERT_EQ(s.subscriptions.size(), 1u);
  const Subscription* sub = s.find("ehr");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->header, "x-ehr-secret");
  EXPECT_EQ(sub->fhir_base_url, "http://127.0.0.1:9/fhir");
  EXPECT_TRUE(sub->events_operation);
  EXPECT_TRUE(sub->patient_everything);
  EXPECT_EQ(sub->http.timeout, std::chrono::seconds(5));
  EXPECT_EQ(sub->secret->get().value, "s3cret-of-the-ehr");
  EXPECT_EQ(s.find("other"), nullptr);
}

TEST_F(SubscriptionSettingsTest, RefusesWhatCannotWork) {
  auto one = [&](Json sub) { return Json{{"subscriptions", Json::array({sub})}}; };
  EXPECT_THAT(error_of(one({{"name", "a b"}, {"secret_file", secret_}})),
              HasSubstr("subscriptions[0].name: must be 1-64 letters"));
  EXPECT_THAT(error_of(one({{"name", "ehr"}})),
              HasSubstr("subscriptions.ehr.secret_file: a subscription needs secret_file or"));
  EXPECT_THAT(error_of(one({{"name", "ehr"}, {"secret", "inline"}})),
              HasSubstr("subscriptions.ehr.secret: secrets do not belong in settings files"));
  EXPECT_THAT(error_of(one({{"name", "ehr"}, {"secret_file", secret_}, {"colour", "red"}})),
              HasSubstr("subscriptions.ehr.colour: unknown setting"));
  EXPECT_THAT(
      error_of(one({{"name", "ehr"}, {"secret_file", secret_}, {"events_operation", true}})),
      HasSubstr("subscriptions.ehr.events_operation: asking for missed events needs"));
  EXPECT_THAT(error_of(one({{"name", "ehr"},
                            {"secret_file", secret_},
                            {"fhir_base_url", "http://ehr.example.org/fhir"}})),
              HasSubstr("subscriptions.ehr.fhir_base_url: plain http://"));
  const Json twice = {{"name", "a"}, {"secret_file", secret_}};
  EXPECT_THAT(error_of(Json{{"subscriptions", Json::array({twice, twice})}}),
              HasSubstr("subscriptions.a.name: is given twice"));
}

TEST_F(SubscriptionSettingsTest, ErrorsInTheFileNameFileAndLine) {
  std::ofstream(dir_ / kFhirSubscriptionsFile) << "subscriptions:\n"
                                                  "  - name: ehr\n"
                                                  "    secret_file: "
                                               << secret_
                                               << "\n"
                                                  "    fhir_base_url: ftp://ehr/fhir\n";
  try {
    load_chart_settings(dir_);
    FAIL() << "accepted an ftp:// base URL";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("fhir-subscriptions.yaml:4: subscriptions.ehr.fhir_base_url"));
  }
}

}  // namespace
}  // namespace chartflow::handlers::fhir_subscriptions
