// A subscriber's channel.header lines are its credential: they reach the database only sealed
// (--secrets-key-file), are sent in clear only to the subscriber over its channel, and rows
// stored in clear before sealing existed are sealed by their deliverer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

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
      // The request line's target: which subscription's endpoint was called.
      const auto first = r.head.find(' ');
      targets_.push_back(r.head.substr(first + 1, r.head.find(' ', first + 1) - first - 1));
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
  std::string create_with_header(const std::string& path = "/hook",
                                 const std::string& secret = kSecret) {
    const Json body =
        handlers::testing::SubscriptionRequest("review-requested", subscriber_->url(path))
            .header("Authorization: Bearer " + secret)
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

  // Calls to `path` that carried `secret`.
  std::size_t calls(const std::string& path, const std::string& secret) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (std::size_t i = 0; i < targets_.size(); ++i)
      n += targets_[i] == path && authorizations_[i] == "Bearer " + secret ? 1 : 0;
    return n;
  }

  std::mutex mu_;
  std::vector<std::string> authorizations_;
  std::vector<std::string> targets_;
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

// A sealed value is bound to its subscription: copied onto another subscription's row (by
// someone who can write to the database but has no key), it does not open there, so one
// subscriber's credential is never sent to another's endpoint.
TEST_F(OutboundSecrets, ASealedHeaderCopiedToAnotherSubscriptionDoesNotOpenThere) {
  const std::string a = create_with_header("/a", "secret-of-a");
  const std::string b = create_with_header("/b", "secret-of-b");
  ASSERT_TRUE(wait_until([&] { return calls("/b", "secret-of-b") >= 1; }));
  scalar(
      "UPDATE fhir_out_subscription SET sealed_headers = (SELECT sealed_headers FROM "
      "fhir_out_subscription WHERE id = '" +
      a + "') WHERE id = '" + b + "' RETURNING 1");
  // B's deliverer heartbeats every second and opens its header for each call.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(calls("/b", "secret-of-a"), 0U) << "A's credential went to B's endpoint";
  EXPECT_GE(calls("/a", "secret-of-a"), 1U);
}

}  // namespace
}  // namespace chartflow::handlers::fhir_subscriptions
