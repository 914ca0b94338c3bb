// The outbound endpoint settings of insurers.yaml and bill-delivery.yaml: https:// by default,
// plain http:// only to a loopback host or with allow_insecure (then a start-up warning), tls and
// auth read and checked at load, and every error naming the file and the key.
#include "handlers/common/outbound_settings.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "engine/util/access_token.hpp"
#include "handlers/chart_module.hpp"
#include "handlers/chart_settings.hpp"
#include "handlers/discharge/bill_channels.hpp"
#include "handlers/insurance/insurer_settings.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers {
namespace {

using insurance::InsurerSettings;
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

Json payor(Json endpoint) { return Json{{"payors", {{"acme", std::move(endpoint)}}}}; }

TEST(OutboundSettingsTest, HttpToANonLoopbackHostIsRefusedWithoutAllowInsecure) {
  EXPECT_THAT(error_of([] {
                InsurerSettings::from_json(payor({{"url", "http://payer.example/claims"}}));
              }),
              AllOf(HasSubstr("payors.acme.url"), HasSubstr("allow_insecure")));
  EXPECT_THAT(error_of([] { InsurerSettings::from_json(payor("http://10.1.2.3/claims")); }),
              HasSubstr("payors.acme.url"));
  EXPECT_THAT(
      error_of([] {
        discharge::BillDeliverySettings::from_json(Json{
            {"channels",
             {{{"name", "billing-system"}, {"type", "webhook"}, {"url", "http://b.example/"}}}}});
      }),
      AllOf(HasSubstr("channels.billing-system.url"), HasSubstr("allow_insecure")));

  // Allowed, but never silently.
  auto allowed = InsurerSettings::from_json(
      payor({{"url", "http://payer.example/claims"}, {"allow_insecure", true}}));
  ASSERT_EQ(allowed.warnings.size(), 1U);
  EXPECT_THAT(allowed.warnings[0], AllOf(HasSubstr("payors.acme"), HasSubstr("cleartext")));
  EXPECT_TRUE(allowed.payors["acme"].http.tls.allow_insecure);
  auto bill = discharge::BillDeliverySettings::from_json(Json{{"channels",
                                                               {{{"name", "w"},
                                                                 {"type", "webhook"},
                                                                 {"url", "http://b.example/"},
                                                                 {"allow_insecure", true}}}}});
  EXPECT_EQ(bill.warnings.size(), 1U);

  // https and loopback http need nothing and warn of nothing.
  for (const char* url : {"https://payer.example/claims", "http://127.0.0.1:9000/claims",
                          "http://localhost/claims", "http://[::1]:80/"}) {
    auto ok = InsurerSettings::from_json(payor(url));
    EXPECT_TRUE(ok.warnings.empty()) << url;
    EXPECT_EQ(ok.payors["acme"].url, url);
  }
  EXPECT_THAT(error_of([] { InsurerSettings::from_json(payor("ftp://payer.example/")); }),
              HasSubstr("payors.acme.url"));
  EXPECT_THAT(
      error_of([] {
        InsurerSettings::from_json(payor({{"url", "https://p.example/"}, {"alow_insecure", true}}));
      }),
      HasSubstr("payors.acme.alow_insecure: unknown setting"));
}

TEST(OutboundSettingsTest, TlsAndAuthAreReadAndCheckedAtLoad) {
  chartflow::testing::TempDir dir("chartflow-outbound");
  const std::string token = (dir.path() / "token").string();
  std::ofstream(token) << "abc123\n";
  const std::string ca = (dir.path() / "ca.pem").string();
  std::ofstream(ca) << "not checked here; curl reads it\n";

  auto s =
      InsurerSettings::from_json(payor({{"url", "https://payer.example/claims"},
                                        {"tls", {{"ca_file", ca}}},
                                        {"auth", {{"type", "bearer"}, {"token_file", token}}}}));
  const auto& e = s.payors["acme"];
  EXPECT_EQ(e.http.tls.ca_file, ca);
  ASSERT_TRUE(e.http.auth);
  EXPECT_EQ(e.http.auth->get().value, "abc123");

  ::setenv("CHARTFLOW_TEST_PAYER_TOKEN", "from-env", 1);
  auto env = InsurerSettings::from_json(
      payor({{"url", "https://payer.example/claims"},
             {"auth", {{"type", "bearer"}, {"token_env", "CHARTFLOW_TEST_PAYER_TOKEN"}}}}));
  EXPECT_EQ(env.payors["acme"].http.auth->get().value, "from-env");
  ::unsetenv("CHARTFLOW_TEST_PAYER_TOKEN");

  auto err = [](Json endpoint) {
    return error_of([&] { InsurerSettings::from_json(payor(std::move(endpoint))); });
  };
  const Json url = "https://payer.example/claims";
  EXPECT_THAT(err({{"url", url}, {"tls", {{"ca_file", "/no/such/ca.pem"}}}}),
              HasSubstr("payors.acme.tls.ca_file: no file /no/such/ca.pem"));
  EXPECT_THAT(err({{"url", url}, {"tls", {{"ca", ca}}}}),
              HasSubstr("payors.acme.tls.ca: unknown setting"));
  EXPECT_THAT(err({{"url", url}, {"auth", {{"type", "bearer"}, {"token_file", "/no/such"}}}}),
              HasSubstr("payors.acme.auth.token_file: cannot read /no/such"));
  EXPECT_THAT(err({{"url", url}, {"auth", {{"type", "bearer"}, {"token", "literal"}}}}),
              HasSubstr("payors.acme.auth.token: secrets do not belong in settings files"));
  EXPECT_THAT(
      err({{"url", url}, {"auth", {{"type", "bearer"}, {"token_env", "CHARTFLOW_NOT_SET_X"}}}}),
      HasSubstr("payors.acme.auth.token_env: the environment variable CHARTFLOW_NOT_SET_X"));
  EXPECT_THAT(err({{"url", url}, {"auth", {{"type", "basic"}}}}),
              HasSubstr("payors.acme.auth.type: must be"));
  EXPECT_THAT(err({{"url", url},
                   {"auth",
                    {{"type", "oauth2_client_credentials"},
                     {"token_url", "http://payer.example/token"},
                     {"client_id", "c"},
                     {"client_secret_file", token}}}}),
              AllOf(HasSubstr("payors.acme.auth.token_url: "), HasSubstr("allow_insecure")));
  EXPECT_THAT(err({{"url", url},
                   {"auth",
                    {{"type", "oauth2_client_credentials"},
                     {"token_url", "https://payer.example/token"},
                     {"client_id", "c"},
                     {"private_key_file", token},
                     {"algorithm", "RS384"},
                     {"key_id", "k"}}}}),
              HasSubstr("payors.acme.auth.private_key_file: "));
  EXPECT_THAT(err({{"url", url},
                   {"auth",
                    {{"type", "oauth2_client_credentials"},
                     {"token_url", "https://payer.example/token"},
                     {"client_id", "c"}}}}),
              HasSubstr("payors.acme.auth.private_key_file: "));
}

TEST(OutboundSettingsTest, ErrorsNameTheFileAndWarningsReachTheStartUpLog) {
  chartflow::testing::TempDir dir("chartflow-outbound-files");
  std::filesystem::create_directories(dir.path() / "settings");
  std::ofstream(dir.path() / "settings" / "insurers.yaml")
      << "payors:\n  default: { url: \"http://payer.example/claims\" }\n";
  const std::string file = (dir.path() / "settings" / "insurers.yaml").string();
  EXPECT_THAT(error_of([&] { load_chart_settings(dir.path()); }),
              AllOf(HasSubstr(file + ":2: payors.default.url: "), HasSubstr("allow_insecure")));

  std::ofstream(dir.path() / "settings" / "insurers.yaml")
      << "payors:\n  default: { url: \"http://payer.example/claims\", allow_insecure: true }\n";
  std::ofstream(dir.path() / "settings" / "bill-delivery.yaml")
      << "channels:\n  - { name: hook, type: webhook, url: \"http://b.example/\", "
         "allow_insecure: true }\n";
  std::vector<std::string> warnings;
  ChartHandlerOptions options;
  options.warn = [&](const std::string& w) { warnings.push_back(w); };
  HandlerRegistry registry;
  register_chart_handlers(registry, dir.path(), options);
  ASSERT_EQ(warnings.size(), 2U);
  EXPECT_THAT(warnings[0], AllOf(HasSubstr(file + ": payors.default"), HasSubstr("cleartext"),
                                 HasSubstr("payer.example")));
  EXPECT_THAT(warnings[1], HasSubstr("bill-delivery.yaml: channels.hook"));
}

}  // namespace
}  // namespace chartflow::handlers
