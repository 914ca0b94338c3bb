// Issue #14, finding 6: every door applies the same limits to what enters (size, JSON nesting
// depth, Bundle entries) before anything parses it. The drop folder's share is in
// drop_folder_pgtest.cpp; this is the Alertmanager receiver, which takes its body through the
// HTTP server's checks like every route, against the whole application as `serve` wires it.
#include <gtest/gtest.h>

#include "core/input_limits.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

std::string nested(std::size_t depth) {
  std::string s;
  for (std::size_t i = 0; i < depth; ++i) s += "{\"a\":";
  s += "1";
  s.append(depth, '}');
  return s;
}

constexpr const char* kAlert = R"({"version": "4", "status": "firing", "receiver": "chartflow",
  "groupKey": "{}:{alertname=\"DiskFull\"}", "alerts": [{"status": "firing",
  "labels": {"alertname": "DiskFull", "severity": "critical"}, "annotations": {},
  "startsAt": "2024-05-01T10:00:00Z", "fingerprint": "abc123"}]})";

class InputLimitsTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    app_ = std::make_unique<AppServer>(dsn());
    operator_ = create_token(dsn(), "operator");
  }
  void TearDown() override {
    app_.reset();
    PgTest::TearDown();
  }
  HttpResponse alert(const std::string& body) {
    return app_->call("POST", "/v1/alertmanager", operator_, body,
                      {{"Content-Type", "application/json"}});
  }

  std::unique_ptr<AppServer> app_;
  std::string operator_;
};

TEST_F(InputLimitsTest, Finding06AlertmanagerIsHeldToTheSameLimitsAndTheServerKeepsServing) {
  // Nested past the limit inside an alert's annotations, and 500,000 deep: refused before parsing.
  std::string deep_label = kAlert;
  deep_label.replace(deep_label.find(R"("annotations": {})"), 17,
                     R"("annotations": )" + nested(core::kDefaultJsonDepth + 1));
  // 500,000 deep within the 1 MiB body limit: only the depth check refuses it.
  const std::string very_deep = std::string(500'000, '[') + std::string(500'000, ']');
  for (const std::string& body : {deep_label, very_deep}) {
    auto r = alert(body);
    EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
    EXPECT_NE(r.body.find("nested deeper than 64"), std::string::npos) << r.body.substr(0, 200);
  }
  // Over the API body limit: 413.
  auto large = alert(R"({"pad": ")" + std::string(core::kDefaultBodyBytes, 'x') + R"("})");
  EXPECT_EQ(large.status, 413) << large.body.substr(0, 200);
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), "0");
  // The server still serves, and a good notification is accepted.
  EXPECT_EQ(app_->call("GET", "/healthz", "").status, 200);
  auto ok = alert(kAlert);
  EXPECT_TRUE(ok.status == 200 || ok.status == 202) << ok.status << " " << ok.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type LIKE 'alert.%'"), "1");
}

}  // namespace
}  // namespace chartflow::testing
