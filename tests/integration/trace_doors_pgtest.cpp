// Traces (issue #18 part 4) at every door of the application as `chartflow serve` wires it: a
// `traceparent` sent with a chart upload, an S3 PUT (header or x-amz-meta-traceparent), a batch
// of events, a signed webhook and a FHIR subscription notification is what the stored event
// keeps, and the run it starts is that trace, its root span under the caller's span in the fake
// OTLP collector.
#include <gtest/gtest.h>

#include <fstream>

#include "core/trace.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "http/webhook_auth.hpp"
#include "runtime/trace_export.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/s3_signer.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::testing {
namespace {

namespace data = chartflow::handlers::testing;

constexpr const char* kS3Key = "AKIATRACES";
constexpr const char* kS3Secret = "trace-doors-secret-of-sixteen-plus";
constexpr const char* kWebhookType = "demo.signed";
constexpr const char* kWebhookSecret = "trace-doors-webhook-secret-0123456789";
constexpr const char* kFhirSecret = "trace-doors-fhir-secret-0123456789";
constexpr const char* kCallerSpan = "b7ad6b7169203331";
const char* const kChartFile =
    "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";

// One run per event of every door's type: its root span is recorded when it ends, at once.
const std::string kDoors = R"(
name: doors
on:
  - event: chart.uploaded
  - event: object.created
  - event: demo.batch
  - event: demo.signed
  - event: fhir.notification
steps:
  only: { handler: noop }
)";

// A trace id of its own for each door, so no door passes on another's event.
std::string trace_of(int door) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "4bf92f3577b34da6a3ce929d0e0e%04x", door);
  return buf;
}
std::string traceparent(const std::string& trace_id) {
  return "00-" + trace_id + "-" + kCallerSpan + "-01";
}

std::vector<Json> received_spans(const FakeHttpServer& collector) {
  std::vector<Json> out;
  for (const auto& req : collector.requests()) {
    const Json body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded()) continue;
    for (const auto& rs : body.value("resourceSpans", Json::array()))
      for (const auto& ss : rs.value("scopeSpans", Json::array()))
        for (const auto& span : ss.value("spans", Json::array())) out.push_back(span);
  }
  return out;
}

class TraceDoorsTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    collector_ = std::make_unique<FakeHttpServer>([](const ReceivedRequest&, int) { return 200; });
    runtime::TraceExportSettings traces;
    traces.endpoint = collector_->url("");
    traces.instance = "trace-doors";
    traces.flush_interval = Millis(50);
    auto s3 = std::make_shared<http::S3Config>();
    s3->buckets["charts"] = true;
    s3->buckets["scans"] = false;
    s3->keys[kS3Key] = {kS3Secret, http::Role::kUploader, {}};
    app::HttpRouteOptions routes;
    auto secrets = std::make_shared<http::WebhookSecrets>();
    secrets->add(kWebhookType, {kWebhookSecret});
    routes.webhook_secrets = secrets;
    std::ofstream(dir_.path() / "secret") << kFhirSecret << "\n";
    handlers::ChartHandlerOptions chart;
    chart.fhir_subscriptions = Json{
        {"subscriptions", {{{"name", "ehr"}, {"secret_file", (dir_.path() / "secret").string()}}}}};
    app_ = std::make_unique<AppServer>(dsn(), test_server_settings(), s3, routes, chart,
                                       std::make_shared<runtime::TraceExporter>(traces));
    app_->publish_workflows({kDoors});
    admin_ = create_token(dsn(), "admin");  // chart uploads need more than operator
  }
  void TearDown() override {
    app_.reset();
    collector_.reset();
    PgTest::TearDown();
  }

  // The newest event of `type` has the trace and caller's span of `trace_id`, and the run of
  // `doors` it started is a trace whose root span the collector received under that span.
  void expect_traced(const std::string& type, const std::string& trace_id) {
    EXPECT_EQ(scalar("SELECT trace_id || ' ' || coalesce(trace_parent, '-') FROM event WHERE "
                     "type = '" +
                     type + "' ORDER BY id DESC LIMIT 1"),
              trace_id + " " + kCallerSpan)
        << type;
    const std::string run = scalar(
        "SELECT coalesce(max(r.id), 0) FROM workflow_run r JOIN event e ON "
        "e.id = r.event_id WHERE r.workflow = 'doors' AND e.type = '" +
        type + "'");
    ASSERT_NE(run, "0") << "no run of doors for " << type;
    const std::string root_span = core::run_span_id(trace_id, std::stoll(run));
    const bool seen = wait_until([&] {
      for (const auto& s : received_spans(*collector_))
        if (s.at("name") == "run doors" && s.at("traceId") == trace_id)
          return s.value("spanId", "") == root_span && s.value("parentSpanId", "") == kCallerSpan;
      return false;
    });
    EXPECT_TRUE(seen) << "no root span of run " << run << " in trace " << trace_id << " under "
                      << kCallerSpan << " for " << type;
  }

  TempDir dir_{"cf-trace-doors"};
  std::unique_ptr<FakeHttpServer> collector_;
  std::unique_ptr<AppServer> app_;
  std::string admin_;
};

TEST_F(TraceDoorsTest, AChartUploadJoinsTheCallersTrace) {
  const auto trace_id = trace_of(1);
  auto r = app_->call(
      "PUT", "/v1/charts/lemuel", admin_, data::read_file(data::charts_dir() / kChartFile),
      {{"Content-Type", "application/fhir+json"}, {"traceparent", traceparent(trace_id)}});
  ASSERT_EQ(r.status, 202) << r.body;
  expect_traced("chart.uploaded", trace_id);
}

TEST_F(TraceDoorsTest, AnS3PutJoinsTheTraceOfItsObjectMetadata) {
  // A chart bucket's object is a chart upload; any other bucket's an object.created.
  const auto chart_trace = trace_of(2);
  auto chart =
      s3_call(app_->port(), kS3Key, kS3Secret, "PUT", "/charts/in/lemuel.json",
              data::read_file(data::charts_dir() / kChartFile), "", "application/fhir+json",
              {{"x-amz-meta-traceparent", traceparent(chart_trace)}});
  ASSERT_EQ(chart.status, 200) << chart.body;
  expect_traced("chart.uploaded", chart_trace);
  const auto scan_trace = trace_of(3);
  auto scan = s3_call(app_->port(), kS3Key, kS3Secret, "PUT", "/scans/a.pdf", "%PDF scan", "",
                      "application/pdf", {{"x-amz-meta-traceparent", traceparent(scan_trace)}});
  ASSERT_EQ(scan.status, 200) << scan.body;
  expect_traced("object.created", scan_trace);
}

TEST_F(TraceDoorsTest, ABatchOfEventsJoinsTheCallersTrace) {
  const auto trace_id = trace_of(4);
  const Json batch = Json::array({{{"type", "demo.batch"}, {"body", {{"n", 1}}}},
                                  {{"type", "demo.batch"}, {"body", {{"n", 2}}}}});
  auto r =
      app_->call("POST", "/v1/events", admin_, batch.dump(),
                 {{"Content-Type", "application/json"}, {"traceparent", traceparent(trace_id)}});
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'demo.batch' AND trace_id = '" +
                   trace_id + "'"),
            "2");
  expect_traced("demo.batch", trace_id);
}

TEST_F(TraceDoorsTest, ASignedWebhookJoinsTheSendersTrace) {
  const auto trace_id = trace_of(5);
  const std::string body = Json{{"order", "o-1"}}.dump();
  const std::string ts = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  auto r = app_->call("POST", std::string("/v1/events/") + kWebhookType, "", body,
                      {{"Content-Type", "application/json"},
                       {"x-chartflow-timestamp", ts},
                       {"x-chartflow-signature", http::webhook_signature(kWebhookSecret, ts, body)},
                       {"traceparent", traceparent(trace_id)}});
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(scalar("SELECT source FROM event WHERE type = 'demo.signed'"), "webhook");
  expect_traced(kWebhookType, trace_id);
}

TEST_F(TraceDoorsTest, AFhirNotificationJoinsTheServersTrace) {
  const auto trace_id = trace_of(6);
  const Json params = Json::array(
      {{{"name", "subscription"}, {"valueReference", {{"reference", "Subscription/sub-1"}}}},
       {{"name", "topic"}, {"valueCanonical", "http://example.org/topic/enc"}},
       {{"name", "status"}, {"valueCode", "active"}},
       {{"name", "type"}, {"valueCode", "event-notification"}},
       {{"name", "events-since-subscription-start"}, {"valueString", "1"}},
       {{"name", "notification-event"},
        {"part",
         {{{"name", "event-number"}, {"valueString", "1"}},
          {{"name", "focus"}, {"valueReference", {{"reference", "Encounter/enc-1"}}}}}}}});
  const Json bundle = {{"resourceType", "Bundle"},
                       {"type", "history"},
                       {"entry",
                        {{{"resource", {{"resourceType", "Parameters"}, {"parameter", params}}}},
                         {{"fullUrl", "http://ehr.example/fhir/Encounter/enc-1"},
                          {"resource", {{"resourceType", "Encounter"}, {"id", "enc-1"}}}}}}};
  auto r = app_->call("POST", "/fhir/subscriptions/ehr", "", bundle.dump(),
                      {{"Content-Type", "application/fhir+json"},
                       {"Authorization", std::string("Bearer ") + kFhirSecret},
                       {"traceparent", traceparent(trace_id)}});
  ASSERT_EQ(r.status, 200) << r.body;
  expect_traced("fhir.notification", trace_id);
}

}  // namespace
}  // namespace chartflow::testing
