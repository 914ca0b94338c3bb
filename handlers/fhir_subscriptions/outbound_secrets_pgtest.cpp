// A subscriber's channel.header lines are its credential: they reach the database only sealed
// (--secrets-key-file), are sent in clear only to the subscriber over its channel, and rows
// stored in clear before sealing existed are sealed by their deliverer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>

#include "handlers/testing/outbound_subscription_requests.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using chartflow::testing::AppServer;
using chartflow::testing::FakeHttpServer;
using chartflow::testing::FakeResponse;
using chartflow::testing::ReceivedRequest;
using chartflow::testing::wait_until;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSecret = "subscriber-secret-77";

class OutboundSecrets : public chartflow::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    subscriber_ = std::make_unique<FakeHttpServer>([this](const ReceivedRequest& r, int) {
      std::lock_guard lock(mu_);
      authorizations_.push_back(r.header("Authorization"));
      return FakeResponse{200, "{}"};
    });
    app_ = std::make_unique<AppServer>(dsn());
    app_->publish_workflows({handlers::testing::fast_delivery_workflow()});
    admin_ = chartflow::testing::create_token(dsn(), "admin");
  }
  void TearDown() override {
    app_.reset();
    subscriber_.reset();
    PgTest::TearDown();
  }
  // Heartbeats every second, so a deliverer runs again without any chart activity.
  std::string create_with_header() {
    const Json body =
        handlers::testing::SubscriptionRequest("review-requested", subscriber_->url("/hook"))
            .header(std::string("Authorization: Bearer ") + kSecret)
            .heartbeat(1)
            .json();
    auto r = app_->call("POST", "/fhir/Subscription", admin_, body.dump(),
                        {{"Content-Type", "application/fhir+json"}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("id", "");
  }
  std::size_t calls_with_secret() {
    std::lock_guard lock(mu_);
    return static_cast<std::size_t>(std::count(authorizations_.begin(), authorizations_.end(),
                                               std::string("Bearer ") + kSecret));
  }

  std::mutex mu_;
  std::vector<std::string> authorizations_;
  std::unique_ptr<FakeHttpServer> subscriber_;
  std::unique_ptr<AppServer> app_;
  std::string admin_;
};

TEST_F(OutboundSecrets, TheSubscribersHeaderIsStoredOnlySealedAndStillSent) {
  const std::string id = create_with_header();
  ASSERT_TRUE(wait_until([&] { return calls_with_secret() >= 1; }));
  // Every column of the row, and every other table a dump would carry.
  EXPECT_THAT(scalar("SELECT string_agg(s::text, ' ') FROM fhir_out_subscription s"),
              Not(HasSubstr(kSecret)));
  EXPECT_THAT(scalar("SELECT sealed_headers FROM fhir_out_subscription WHERE id = '" + id + "'"),
              HasSubstr("cfs1:"));
  EXPECT_THAT(scalar("SELECT string_agg(e::text, ' ') FROM event e"), Not(HasSubstr(kSecret)));
  EXPECT_THAT(scalar("SELECT string_agg(a::text, ' ') FROM audit_event a"),
              Not(HasSubstr(kSecret)));
}

TEST_F(OutboundSecrets, ARowStoredInClearBeforeSealingIsSealedByItsDeliverer) {
  const std::string id = create_with_header();
  ASSERT_TRUE(wait_until([&] { return calls_with_secret() >= 1; }));
  // As a row written before sealing existed (migration charts 0007) looks.
  scalar(std::string("UPDATE fhir_out_subscription SET sealed_headers = NULL, headers = "
                     "'[\"Authorization: Bearer ") +
         kSecret + "\"]' WHERE id = '" + id + "'");
  const std::size_t before = calls_with_secret();
  ASSERT_TRUE(wait_until([&] {
    return scalar(
               "SELECT sealed_headers IS NOT NULL AND headers = '[]' FROM "
               "fhir_out_subscription WHERE id = '" +
               id + "'") == "t";
  })) << scalar("SELECT headers::text FROM fhir_out_subscription WHERE id = '" + id + "'");
  // The heartbeats after it still carry the credential.
  ASSERT_TRUE(wait_until([&] { return calls_with_secret() > before + 1; }));
  EXPECT_THAT(scalar("SELECT string_agg(s::text, ' ') FROM fhir_out_subscription s"),
              Not(HasSubstr(kSecret)));
}

}  // namespace
}  // namespace chartflow::handlers::fhir_subscriptions
