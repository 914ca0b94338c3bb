// The insurer outbox end to end over HTTPS: insurers.yaml (written here, loaded like at start-up)
// names https:// endpoints with the test CA and a bearer token file; a notification is delivered
// to the insurer whose certificate that CA issued, and one to an insurer with a certificate from
// another CA fails its attempt with a TLS error, stays pending for the step's retry, and neither
// the log nor the stored attempt carries anything of the notification's content.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/chart_settings.hpp"
#include "handlers/insurance/outbox.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "store/store.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/tls_test_server.hpp"

namespace chartflow::handlers::insurance {
namespace {

using chartflow::testing::SeenRequest;
using chartflow::testing::TestPki;
using chartflow::testing::TlsTestServer;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// One attempt of the insurance step, keeping what it logs.
class RecordingContext : public StepContext {
 public:
  RecordingContext(Sql& sql, store::Store& journal, int attempt)
      : sql_(sql), journal_(journal), attempt_(attempt) {}
  std::int64_t run_id() const override { return 1; }
  const std::string& workflow() const override { return workflow_; }
  const std::string& step() const override { return step_; }
  int attempt() const override { return attempt_; }
  const std::string& idempotency_key() const override { return key_; }
  TimePoint deadline() const override { return Clock::now() + std::chrono::minutes(1); }
  std::int64_t event_id() const override { return 1; }
  const std::string& event_type() const override { return event_type_; }
  const Json& event() const override { return empty_; }
  const Json& input() const override { return empty_; }
  const Json& needs() const override { return empty_; }
  const Json& config() const override { return empty_; }
  const Wake* wake() const override { return nullptr; }
  Sql& sql() override { return sql_; }
  // Commits at once on a connection of its own, as the engine's journal does.
  void journal(const std::function<void(Sql&)>& fn) override { journal_.with_sql(fn); }
  void log(LogLevel, std::string_view message, const Json& fields) override {
    logs.push_back(std::string(message) + " " + fields.dump());
  }
  std::vector<std::string> logs;

 private:
  Sql& sql_;
  store::Store& journal_;
  int attempt_;
  const std::string workflow_ = "chart-update";
  const std::string step_ = "insurance";
  const std::string key_ = "run-1/insurance";
  const std::string event_type_ = "chart.uploaded";
  const Json empty_ = Json::object();
};

class OutboundInsurerPgTest : public chartflow::testing::PgTest {};

TEST_F(OutboundInsurerPgTest, OutboxDeliversOverHttpsAndABadCertificateFailsWithoutPhi) {
  TestPki pki;
  using Answer = TlsTestServer::Answer;
  TlsTestServer insurer({pki.p("server.pem"), pki.p("server.key"), ""},
                        [](const SeenRequest&, int) { return Answer{201}; });
  TlsTestServer impostor({pki.p("other-server.pem"), pki.p("other-server.key"), ""},
                         [](const SeenRequest&, int) { return Answer{200}; });
  pki.write("insurer-token", "payer-token-1\n");
  std::filesystem::create_directories(pki.dir() / "workflows" / "settings");
  std::ofstream(pki.dir() / "workflows" / "settings" / "insurers.yaml")
      << "timeout: 5s\n"
         "payors:\n"
         "  medicare:\n"
         "    url: \""
      << insurer.url("/fhir/Claim") << "\"\n"
      << "    tls: { ca_file: \"" << pki.p("ca.pem") << "\" }\n"
      << "    auth: { type: bearer, token_file: \"" << pki.p("insurer-token") << "\" }\n"
      << "  acme:\n"
         "    url: \""
      << impostor.url("/fhir/Claim") << "\"\n"
      << "    tls: { ca_file: \"" << pki.p("ca.pem") << "\" }\n";
  const ChartSettings settings = load_chart_settings(pki.dir() / "workflows");
  EXPECT_TRUE(settings.warnings.empty());

  // A patient reference and a code stand in for what must not leak.
  const std::string phi = "Patient/Quorra-Phimarker-1941";
  store::Store store(dsn());
  store::Store journal(dsn());
  const std::string raw = handlers::testing::read_file(
      handlers::testing::charts_dir() /
      "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  store.with_sql(
      [&](Sql& sql) { store_revision(sql, "chart-tls-1", raw, Json::parse(raw), "tablet"); });
  for (const std::string payor : {"medicare", "acme"}) {
    const std::string key = notification_key("chart", "claim", "chart-tls-1", payor);
    Json claim =
        build_claim_notification("chart-tls-1", phi, payor, "claim", key,
                                 {NotificationLine{"ledger/1", "99213", "", 1, 12500, "USD"}});
    store.with_sql([&](Sql& sql) {
      ASSERT_TRUE(enqueue_notification(sql, "chart-tls-1", payor, "claim", key, claim));
    });
  }

  DeliveryReport first;
  std::vector<std::string> logs;
  store.with_sql([&](Sql& sql) {
    RecordingContext ctx(sql, journal, 1);
    first = deliver_pending(ctx, settings.insurers, "chart-tls-1");
    logs = ctx.logs;
  });
  EXPECT_EQ(first.delivered, 1);
  EXPECT_EQ(first.failed, 1);
  EXPECT_THAT(first.first_error, StartsWith("TLS: certificate verify failed")) << first.first_error;

  auto seen = insurer.requests();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].target, "/fhir/Claim");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer payer-token-1");
  EXPECT_EQ(seen[0].header("content-type"), "application/fhir+json");
  EXPECT_THAT(seen[0].body, HasSubstr(phi));  // the insurer, over TLS, gets the claim
  EXPECT_TRUE(impostor.requests().empty()) << "a claim went to an unverified server";
  EXPECT_GE(impostor.handshake_failures_within(std::chrono::seconds(10)), 1);

  // The failure is logged and stored with the transport error only.
  bool failure_logged = false;
  for (const auto& line : logs) {
    EXPECT_THAT(line, Not(HasSubstr("Phimarker")));
    EXPECT_THAT(line, Not(HasSubstr("99213")));
    if (line.find("insurer_notification_failed") != std::string::npos) {
      failure_logged = true;
      EXPECT_THAT(line, HasSubstr("TLS: certificate verify failed"));
    }
  }
  EXPECT_TRUE(failure_logged);
  EXPECT_EQ(scalar("SELECT status FROM insurer_outbox WHERE payor = 'acme'"), "pending");
  EXPECT_EQ(scalar("SELECT status FROM insurer_outbox WHERE payor = 'medicare'"), "delivered");
  const std::string stored_error =
      scalar("SELECT last_error FROM insurer_outbox WHERE payor = 'acme'");
  EXPECT_THAT(stored_error, StartsWith("TLS: certificate verify failed"));
  EXPECT_THAT(stored_error, Not(HasSubstr("Phimarker")));

  // The step's retry tries again (and fails again): one more attempt, still pending.
  DeliveryReport second;
  store.with_sql([&](Sql& sql) {
    RecordingContext ctx(sql, journal, 2);
    second = deliver_pending(ctx, settings.insurers, "chart-tls-1");
  });
  EXPECT_EQ(second.delivered, 0);
  EXPECT_EQ(second.failed, 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM insurer_delivery_attempt a JOIN insurer_outbox o ON "
                   "o.id = a.outbox_id WHERE o.payor = 'acme' AND a.error LIKE 'TLS: %'"),
            "2");
  EXPECT_EQ(insurer.requests().size(), 1U) << "the delivered claim was sent again";
}

}  // namespace
}  // namespace chartflow::handlers::insurance
