// Event sources over HTTP against a real PostgreSQL, through the Router as `serve` wires it:
// HMAC-signed webhooks, batches stored all or nothing, and the Alertmanager receiver.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "http/api_routes.hpp"
#include "http/webhook_auth.hpp"
#include "metrics/metrics.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

const char* kSecret = "lab-secret-0123456789abcdef";

const std::string kLab = R"(
name: lab-result
on: [{ event: lab.result }]
steps:
  a: { handler: noop }
)";

const std::string kDemo = R"(
name: demo
on: [{ event: demo.one }, { event: demo.two }]
steps:
  a: { handler: noop }
)";

const std::string kAlerts = R"(
name: on-alert
on:
  - event: alert.firing
    filter: { path: /event/labels/severity, equals: critical }
steps:
  page: { handler: noop, input: { from: alertmanager } }
)";

class EventSourcesHttpTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    harness_ =
        std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{kLab, kDemo, kAlerts});
    harness_->start();
    auto secrets = std::make_shared<http::WebhookSecrets>();
    secrets->add("lab.result", http::WebhookSecret{kSecret, std::chrono::seconds(300)});
    // The credential check as the auth module will plug it in: a token means an operator.
    router_.authenticate = [](const http::Request& req) -> std::optional<http::Principal> {
      if (req.header("authorization") == std::optional<std::string>("Bearer operator-token"))
        return http::Principal{"t1", "ops", http::Role::kOperator, {}, false};
      return std::nullopt;
    };
    http::add_engine_routes(router_, harness_->engine(), metrics_, false, secrets);
  }
  void TearDown() override {
    harness_.reset();
    PgTest::TearDown();
  }

  http::Response post(const std::string& path, const std::string& body,
                      std::map<std::string, std::string> headers = {}) {
    http::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body;
    headers["content-type"] = "application/json";
    req.headers = std::move(headers);
    return router_.handle(req);
  }

  static std::map<std::string, std::string> operator_token() {
    return {{"authorization", "Bearer operator-token"}};
  }

  static std::map<std::string, std::string> signed_headers(const std::string& body,
                                                           std::int64_t skew_seconds = 0) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() +
                     skew_seconds;
    const std::string ts = std::to_string(now);
    return {{"x-chartflow-timestamp", ts},
            {"x-chartflow-signature", http::webhook_signature(kSecret, ts, body)}};
  }

  std::string events_count() { return scalar("SELECT count(*) FROM event"); }

  std::unique_ptr<EngineHarness> harness_;
  metrics::Metrics metrics_;
  http::Router router_;
};

TEST_F(EventSourcesHttpTest, SignedWebhookStartsARunWithoutAToken) {
  const std::string body = R"({"patient": "p1", "value": 7.1})";
  // Signed once: the replay below must carry the very same timestamp and signature.
  const auto headers = signed_headers(body);
  auto r = post("/v1/events/lab.result", body, headers);
  ASSERT_EQ(r.status, 202) << r.body;
  const auto run = Json::parse(r.body).at("runs").at(0).get<std::int64_t>();
  EXPECT_TRUE(harness_->wait_status(run, "succeeded"));
  EXPECT_EQ(scalar("SELECT source FROM event WHERE type = 'lab.result'"), "webhook");
  // The same signed request again (a replay inside the window) starts nothing.
  auto again = post("/v1/events/lab.result", body, headers);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_TRUE(Json::parse(again.body).at("duplicate").get<bool>());
}

// Issue #14 item 9: the Idempotency-Key header replaced the signature as the duplicate check but
// was not signed, so one captured request replayed with fresh keys made new events.
TEST_F(EventSourcesHttpTest, AReplayedSignedRequestWithNewIdempotencyKeysStartsNothing) {
  const std::string body = R"({"patient": "p1", "value": 7.1})";
  auto headers = signed_headers(body);
  ASSERT_EQ(post("/v1/events/lab.result", body, headers).status, 202);
  for (const char* key : {"replay-1", "replay-2"}) {
    auto replay = headers;
    replay["idempotency-key"] = key;
    auto r = post("/v1/events/lab.result", body, replay);
    EXPECT_EQ(r.status, 401) << key << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr("Idempotency-Key"));
  }
  EXPECT_EQ(events_count(), "1");
  // A sender that means its key signs it with the body: then the key is the duplicate check.
  const auto now = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
  std::map<std::string, std::string> keyed = {
      {"x-chartflow-timestamp", now},
      {"idempotency-key", "order-9"},
      {"x-chartflow-signature", http::webhook_signature(kSecret, now, body, "order-9")}};
  EXPECT_EQ(post("/v1/events/lab.result", body, keyed).status, 202);
  EXPECT_EQ(post("/v1/events/lab.result", body, keyed).status, 200);
  EXPECT_EQ(events_count(), "2");
}

TEST_F(EventSourcesHttpTest, BadOrMissingSignaturesAre401AndStoreNothing) {
  const std::string body = R"({"value": 1})";
  auto missing = post("/v1/events/lab.result", body, operator_token());
  EXPECT_EQ(missing.status, 401);
  EXPECT_THAT(missing.body, HasSubstr("must be signed"));

  auto h = signed_headers(body);
  auto tampered = post("/v1/events/lab.result", R"({"value": 2})", h);
  EXPECT_EQ(tampered.status, 401);
  EXPECT_THAT(tampered.body, HasSubstr("does not match"));

  h["x-chartflow-signature"] = "sha256=" + std::string(64, '0');
  EXPECT_EQ(post("/v1/events/lab.result", body, h).status, 401);

  auto stale = post("/v1/events/lab.result", body, signed_headers(body, -3600));
  EXPECT_EQ(stale.status, 401);
  EXPECT_THAT(stale.body, HasSubstr("replay"));

  auto garbage_ts = signed_headers(body);
  garbage_ts["x-chartflow-timestamp"] = "yesterday";
  EXPECT_EQ(post("/v1/events/lab.result", body, garbage_ts).status, 401);
  EXPECT_EQ(events_count(), "0");
}

TEST_F(EventSourcesHttpTest, UnsignedTypesStillNeedTheOperatorRole) {
  EXPECT_EQ(post("/v1/events/demo.one", "{}").status, 401);
  EXPECT_EQ(post("/v1/events/demo.one", "{}", operator_token()).status, 202);
}

TEST_F(EventSourcesHttpTest, BatchIsStoredAllOrNothingWithErrorsByIndex) {
  const Json bad = {{"events",
                     {{{"type", "demo.one"}, {"body", {{"n", 1}}}},
                      {{"type", "bad type!"}},
                      {{"type", "demo.two"}, {"body", "not an object"}},
                      {{"type", "demo.two"}, {"colour", "red"}}}}};
  auto r = post("/v1/events", bad.dump(), operator_token());
  ASSERT_EQ(r.status, 400) << r.body;
  const Json err = Json::parse(r.body);
  EXPECT_EQ(err.at("error"), "3 of 4 events are invalid; none was stored");
  ASSERT_EQ(err.at("errors").size(), 3U);
  EXPECT_EQ(err.at("errors")[0].at("index"), 1);
  EXPECT_THAT(err.at("errors")[0].at("error").get<std::string>(), HasSubstr("event type"));
  EXPECT_EQ(err.at("errors")[1].at("index"), 2);
  EXPECT_EQ(err.at("errors")[2].at("index"), 3);
  EXPECT_THAT(err.at("errors")[2].at("error").get<std::string>(), HasSubstr("colour"));
  EXPECT_EQ(events_count(), "0");

  // A valid batch: one transaction, one result per event, dedup by idempotency_key.
  const Json good = Json::array({{{"type", "demo.one"}, {"idempotency_key", "k1"}},
                                 {{"type", "demo.two"}, {"body", {{"n", 2}}}},
                                 {{"type", "demo.one"}, {"idempotency_key", "k1"}}});
  auto ok = post("/v1/events", good.dump(), operator_token());
  ASSERT_EQ(ok.status, 202) << ok.body;
  const Json res = Json::parse(ok.body).at("events");
  ASSERT_EQ(res.size(), 3U);
  EXPECT_FALSE(res[0].at("duplicate").get<bool>());
  EXPECT_TRUE(res[2].at("duplicate").get<bool>());
  EXPECT_EQ(res[2].at("event_id"), res[0].at("event_id"));
  EXPECT_EQ(events_count(), "2");
  for (const auto& e : res)
    for (const auto& run : e.at("runs"))
      EXPECT_TRUE(harness_->wait_status(run.get<std::int64_t>(), "succeeded"));

  EXPECT_EQ(post("/v1/events", good.dump()).status, 401);  // no credential
  EXPECT_EQ(post("/v1/events", "[]", operator_token()).status, 400);
}

TEST_F(EventSourcesHttpTest, BatchOfASignedTypeIsAuthenticatedBySignature) {
  const std::string body = Json::array({{{"type", "lab.result"}, {"body", {{"v", 1}}}},
                                        {{"type", "lab.result"}, {"body", {{"v", 2}}}}})
                               .dump();
  auto r = post("/v1/events", body, signed_headers(body));
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE source = 'webhook'"), "2");

  const std::string mixed = Json::array({{{"type", "lab.result"}}, {{"type", "demo.one"}}}).dump();
  auto m = post("/v1/events", mixed, signed_headers(mixed));
  EXPECT_EQ(m.status, 400);
  EXPECT_EQ(Json::parse(m.body).at("errors")[0].at("index"), 1);
  EXPECT_EQ(post("/v1/events", body, operator_token()).status, 401);
  EXPECT_EQ(events_count(), "2");
}

// A notification as Alertmanager 0.25 sends it (webhook_config, version 4): one group with a
// firing and a resolved alert.
const char* kAlertmanagerPayload = R"({
  "receiver": "chartflow",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "ChartflowQueueBacklog", "instance": "chartflow:8080",
                 "job": "chartflow", "severity": "critical"},
      "annotations": {"summary": "Ready steps are waiting", "description": "oldest 120 s"},
      "startsAt": "2026-11-27T09:12:30.123Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=chartflow_queue_oldest_ready_seconds+%3E+60",
      "fingerprint": "5c3e4a1e1c5b8f3d"
    },
    {
      "status": "resolved",
      "labels": {"alertname": "ChartflowStepFailures", "job": "chartflow", "severity": "warning"},
      "annotations": {"summary": "Steps fail"},
      "startsAt": "2026-11-27T08:00:00Z",
      "endsAt": "2026-11-27T09:10:00Z",
      "generatorURL": "http://prometheus:9090/graph",
      "fingerprint": "a1b2c3d4e5f60718"
    }
  ],
  "groupLabels": {"job": "chartflow"},
  "commonLabels": {"job": "chartflow"},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{job=\"chartflow\"}",
  "truncatedAlerts": 0
})";

TEST_F(EventSourcesHttpTest, AlertmanagerAlertsBecomeEventsOncePerFiring) {
  auto r = post("/v1/alertmanager", kAlertmanagerPayload, operator_token());
  ASSERT_EQ(r.status, 202) << r.body;
  const Json res = Json::parse(r.body).at("events");
  ASSERT_EQ(res.size(), 2U);
  // The critical firing alert starts the workflow; the resolved one is stored, starts nothing.
  ASSERT_EQ(res[0].at("runs").size(), 1U);
  EXPECT_TRUE(harness_->wait_status(res[0].at("runs")[0].get<std::int64_t>(), "succeeded"));
  EXPECT_TRUE(res[1].at("runs").empty());
  const Json firing = Json::parse(scalar("SELECT body FROM event WHERE type = 'alert.firing'"));
  EXPECT_EQ(firing.at("alertname"), "ChartflowQueueBacklog");
  EXPECT_EQ(firing.at("labels").at("severity"), "critical");
  EXPECT_EQ(firing.at("annotations").at("summary"), "Ready steps are waiting");
  EXPECT_EQ(scalar("SELECT dedup_key FROM event WHERE type = 'alert.resolved'"),
            "a1b2c3d4e5f60718/2026-11-27T08:00:00Z/resolved");
  // Alertmanager repeats the notification every repeat_interval: nothing new starts.
  auto again = post("/v1/alertmanager", kAlertmanagerPayload, operator_token());
  ASSERT_EQ(again.status, 202);
  EXPECT_TRUE(Json::parse(again.body).at("events")[0].at("duplicate").get<bool>());
  EXPECT_EQ(events_count(), "2");

  auto bad = post("/v1/alertmanager", R"({"alerts": [{"status": "burning"}]})", operator_token());
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("alerts[0]: status must be firing or resolved"));
  EXPECT_EQ(post("/v1/alertmanager", kAlertmanagerPayload).status, 401);
}

}  // namespace
}  // namespace chartflow::testing
