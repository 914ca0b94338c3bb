// Issue #18 part 2, outbound FHIR subscriptions, through the application as `chartflow serve`
// wires it (AppServer) against a fake subscriber: POST /fhir/Subscription checked and refused
// with a 400 naming the problem, the handshake sent, a chart upload's review-requested and a
// decision's review-decided events delivered numbered from 1, in order, filtered by patient,
// id-only or full-resource; a subscriber that is down retried in order, shown in `error` by
// $status and recovered; heartbeats; every notification recorded as a disclosure.
// Also: question-opened/-closed, bill-issued and run-failed published by the actions that cause
// them; each notification in the audit trail; a publish waking an idle deliverer at once; and an
// attempt that outlives its step timeout never sending beside its retry.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "handlers/fhir_subscriptions/notification.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"
#include "handlers/testing/outbound_subscription_requests.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using chartflow::EventInput;
using chartflow::testing::AppServer;
using chartflow::testing::FakeHttpServer;
using chartflow::testing::FakeResponse;
using chartflow::testing::HttpResponse;
using chartflow::testing::ReceivedRequest;
using chartflow::testing::wait_until;
using ::testing::HasSubstr;

constexpr const char* kBackport =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
// Two encounters of one patient: two charts, two reviews.
const std::string kCharts = std::string(CHARTFLOW_SOURCE_DIR) + "/tests/data/charts/";
const std::string kChart1 =
    kCharts + "enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-8b7f6202.json";
const std::string kChart2 =
    kCharts + "enc-abdul-koepp-20170328-imp-non-urgent-orthopedic-admission-00f7b7ce.json";
constexpr const char* kPatient = "Patient/018f428e-34f6-4707-8009-5ad742f901e7";
constexpr const char* kSubscriberToken = "Bearer subscriber-secret-42";
// A chart whose scan opens questions that a later upload closes.
const std::string kGarrett =
    kCharts + "enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json";
// A released patient's chart: discharge issues the bill.
const std::string kLemuel =
    kCharts + "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Json subscription(const std::string& topic, const std::string& endpoint,
                  const std::string& content = "id-only", const std::string& patient = "") {
  auto request = handlers::testing::SubscriptionRequest(topic, endpoint)
                     .header(std::string("Authorization: ") + kSubscriberToken)
                     .content(content);
  if (!patient.empty()) request.patient(patient);
  return request.json();
}

class OutboundSubscriptionsIssue18 : public chartflow::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    subscriber_ = std::make_unique<FakeHttpServer>([this](const ReceivedRequest& r, int) {
      if (hold_ && r.body.find("event-notification") != std::string::npos && !held_.exchange(true))
        std::this_thread::sleep_for(std::chrono::seconds(3));  // a slow subscriber, not a sync
      std::lock_guard lock(mu_);
      received_.push_back(r);
      return FakeResponse{down_ ? 503 : 200, "{}"};
    });
    // The chart workflow's insurer and bill folder, so a released chart reaches discharge.
    insurer_ = std::make_unique<FakeHttpServer>([](const ReceivedRequest&, int) { return 200; });
    ::setenv("CHARTFLOW_INSURER_URL", insurer_->url("/claims").c_str(), 1);
    ::setenv("CHARTFLOW_BILL_DIR", (bills_.path() / "bills").c_str(), 1);
    ::unsetenv("CHARTFLOW_BILL_WEBHOOK_URL");
    app_ = std::make_unique<AppServer>(dsn());
    app_->publish_workflows({delivery_workflow()});
    admin_ = chartflow::testing::create_token(dsn(), "admin");
    operator_ = chartflow::testing::create_token(dsn(), "operator");
  }
  void TearDown() override {
    app_.reset();
    subscriber_.reset();
    insurer_.reset();
    PgTest::TearDown();
  }
  // The delivery workflow this test runs with.
  virtual std::string delivery_workflow() const {
    return handlers::testing::fast_delivery_workflow();
  }

  HttpResponse create(const Json& body, const std::string& token = "") {
    return app_->call("POST", "/fhir/Subscription", token.empty() ? admin_ : token, body.dump(),
                      {{"Content-Type", "application/fhir+json"}});
  }
  std::string create_ok(const Json& body) {
    auto r = create(body);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("id", "");
  }
  // The notifications received for subscription `id`, parsed with chartflow's own reader.
  std::vector<Notification> received(const std::string& id, const std::string& type = "") {
    std::lock_guard lock(mu_);
    std::vector<Notification> out;
    for (const auto& r : received_) {
      Notification n = parse_notification(Json::parse(r.body));
      if (n.subscription != "Subscription/" + id) continue;
      if (!type.empty() && n.type != type) continue;
      out.push_back(n);
    }
    return out;
  }
  std::vector<std::int64_t> delivered_numbers(const std::string& id) {
    std::vector<std::int64_t> out;
    for (const auto& n : received(id, "event-notification"))
      for (const auto& e : n.events) out.push_back(e.number);
    return out;
  }
  ReceivedRequest last_request() {
    std::lock_guard lock(mu_);
    return received_.back();
  }
  Json status_of(const std::string& id) {
    auto r = app_->call("GET", "/fhir/Subscription/" + id + "/$status", operator_);
    EXPECT_EQ(r.status, 200) << r.body;
    Json out = Json::object();
    const Json body = r.json();
    if (r.status != 200) return out;
    for (const auto& p : body.at("entry")[0].at("resource").at("parameter")) {
      for (const char* key : {"valueCode", "valueString", "valueCanonical"})
        if (p.contains(key)) out[p.at("name").get<std::string>()] = p.at(key);
      if (p.contains("valueCodeableConcept"))
        out["error"] = p.at("valueCodeableConcept").at("text");
    }
    return out;
  }
  HttpResponse upload(const std::string& chart_id) {
    return app_->call("PUT", "/v1/charts/" + chart_id, admin_,
                      read_file(chart_id == "chart-1" ? kChart1 : kChart2),
                      {{"Content-Type", "application/fhir+json"}});
  }
  HttpResponse upload_body(const std::string& chart_id, const std::string& body) {
    return app_->call("PUT", "/v1/charts/" + chart_id, admin_, body,
                      {{"Content-Type", "application/fhir+json"}});
  }
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }
  // The event foci delivered to subscription `id`, in the order received.
  std::vector<std::string> delivered_foci(const std::string& id) {
    std::vector<std::string> out;
    for (const auto& n : received(id, "event-notification"))
      for (const auto& e : n.events) out.push_back(e.focus);
    return out;
  }

  std::mutex mu_;
  std::vector<ReceivedRequest> received_;
  std::atomic<bool> down_{false};
  std::atomic<bool> hold_{false};  // hold the first event notification for 3 s
  std::atomic<bool> held_{false};
  chartflow::testing::TempDir bills_{"outbound-bills"};
  std::unique_ptr<FakeHttpServer> insurer_;
  std::unique_ptr<FakeHttpServer> subscriber_;
  std::unique_ptr<AppServer> app_;
  std::string admin_, operator_;
};

TEST_F(OutboundSubscriptionsIssue18, TopicsAreListed) {
  auto r = app_->call("GET", "/fhir/SubscriptionTopic", operator_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().at("total"), 6);
  auto one = app_->call("GET", "/fhir/SubscriptionTopic/review-requested", operator_);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.json().at("url"),
            "http://chartflow.example/fhir/SubscriptionTopic/review-requested");
  EXPECT_EQ(app_->call("GET", "/fhir/SubscriptionTopic/nope", operator_).status, 404);
}

TEST_F(OutboundSubscriptionsIssue18, CreationIsCheckedAndRefusedWithA400NamingTheProblem) {
  const std::string url = subscriber_->url("/hook");
  auto expect_400 = [&](Json body, const std::string& words) {
    auto r = create(body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(r.body, HasSubstr(words));
  };
  Json body = subscription("review-requested", url);
  Json wrong = body;
  wrong["resourceType"] = "Patient";
  expect_400(wrong, "Subscription resource");
  wrong = body;
  wrong["criteria"] = "http://example.org/topic/other";
  expect_400(wrong, "not a chartflow SubscriptionTopic");
  wrong = body;
  wrong["channel"]["type"] = "email";
  expect_400(wrong, "rest-hook");
  // PHI never goes over cleartext to another machine.
  expect_400(subscription("review-requested", "http://subscriber.example/hook"),
             "channel.endpoint");
  expect_400(subscription("review-requested", url, "everything"), "backport-payload-content");
  wrong = subscription("review-requested", url, "id-only", kPatient);
  wrong["_criteria"]["extension"][0]["valueString"] = "Task?code=x";
  expect_400(wrong, "patient=");
  wrong = body;
  wrong["channel"]["header"] = Json::array({"no colon here"});
  expect_400(wrong, "Name: value");
  // Opening a channel that discloses PHI is an admin's act.
  EXPECT_EQ(create(body, operator_).status, 403);
  EXPECT_EQ(count("SELECT count(*) FROM fhir_out_subscription"), 0);
  EXPECT_TRUE(received("x").empty());
}

TEST_F(OutboundSubscriptionsIssue18, CreatingSendsTheHandshakeAndActivates) {
  auto r = create(subscription("review-requested", subscriber_->url("/hook")));
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id = r.json().at("id");
  EXPECT_EQ(r.json().at("status"), "requested");
  EXPECT_FALSE(r.json().at("channel").contains("header"));
  ASSERT_TRUE(wait_until([&] { return !received(id, "handshake").empty(); }));
  EXPECT_EQ(last_request().header("Authorization"), kSubscriberToken);
  ASSERT_TRUE(wait_until([&] { return status_of(id).value("status", "") == "active"; }))
      << status_of(id).dump();
  const Json s = status_of(id);
  EXPECT_EQ(s.at("events-since-subscription-start"), "0");
  EXPECT_EQ(s.at("type"), "query-status");
  auto read = app_->call("GET", "/fhir/Subscription/" + id, operator_);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(read.json().at("status"), "active");
  EXPECT_THAT(read.body, ::testing::Not(HasSubstr("subscriber-secret")));
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'fhir.subscription.create' "
                  "AND resource_id = '" +
                  id + "'"),
            1);

  // Deleted: status off, and its deliverer ends.
  auto del = app_->call("DELETE", "/fhir/Subscription/" + id, admin_);
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(del.json().at("status"), "off");
  EXPECT_TRUE(wait_until([&] {
    return scalar(
               "SELECT status FROM workflow_run WHERE workflow = 'fhir-subscription-delivery'") ==
           "succeeded";
  }));
}

TEST_F(OutboundSubscriptionsIssue18, ReviewEventsAreDeliveredInOrderFilteredByPatient) {
  const std::string url = subscriber_->url("/hook");
  const std::string full =
      create_ok(subscription("review-requested", url, "full-resource", kPatient));
  const std::string other =
      create_ok(subscription("review-requested", url, "id-only", "Patient/someone-else"));
  const std::string decided = create_ok(subscription("review-decided", url, "id-only"));
  ASSERT_TRUE(wait_until([&] { return !received(decided, "handshake").empty(); }));

  ASSERT_EQ(upload("chart-1").status, 202);
  ASSERT_EQ(upload("chart-2").status, 202);
  ASSERT_TRUE(wait_until([&] { return delivered_numbers(full).size() == 2; }))
      << ::testing::PrintToString(delivered_numbers(full));
  EXPECT_EQ(delivered_numbers(full), (std::vector<std::int64_t>{1, 2}));
  const auto events = received(full, "event-notification");
  EXPECT_EQ(events[0].content, "full-resource");
  EXPECT_EQ(events[1].events_since_start, 2);
  ASSERT_EQ(events[0].events[0].resources.size(), 1u);
  const Json task = events[0].events[0].resources[0];
  EXPECT_EQ(task.at("resourceType"), "Task");
  EXPECT_EQ(task.at("for").at("reference"), kPatient);
  EXPECT_EQ(events[0].events[0].focus, "Task/" + task.at("id").get<std::string>());
  // Another patient's subscription heard nothing.
  EXPECT_TRUE(received(other, "event-notification").empty());
  EXPECT_EQ(status_of(other).at("events-since-subscription-start"), "0");

  // A decision: review-decided, id-only (the focus named, no resource).
  const std::string review = scalar("SELECT min(id) FROM review");
  auto decide = app_->call("POST", "/v1/reviews/" + review + "/decision", admin_,
                           R"({"decision": "approve", "reason": "test"})");
  ASSERT_EQ(decide.status, 200) << decide.body;
  ASSERT_TRUE(wait_until([&] { return delivered_numbers(decided).size() == 1; }));
  const auto d = received(decided, "event-notification").at(0);
  EXPECT_EQ(d.content, "id-only");
  EXPECT_EQ(d.events.at(0).focus, "Task/review-" + review);
  EXPECT_TRUE(d.events.at(0).resources.empty());
  // Each sent notification is a recorded disclosure (ids only), and carries the run's trace.
  EXPECT_EQ(count("SELECT count(*) FROM fhir_out_disclosure WHERE kind = 'event-notification' "
                  "AND status_code = 200"),
            3);
  EXPECT_EQ(count("SELECT count(*) FROM fhir_out_disclosure WHERE subscription_id = '" + full +
                  "' AND patient = '" + kPatient + "' AND content = 'full-resource'"),
            2);
  EXPECT_FALSE(last_request().header("traceparent").empty());
}

TEST_F(OutboundSubscriptionsIssue18, ADownSubscriberIsRetriedInOrderShownAsErrorAndRecovers) {
  down_ = true;
  const std::string id = create_ok(subscription("review-requested", subscriber_->url("/hook")));
  ASSERT_TRUE(wait_until([&] { return status_of(id).value("status", "") == "error"; }))
      << status_of(id).dump();
  EXPECT_EQ(status_of(id).at("error"), "HTTP status 503");
  ASSERT_EQ(upload("chart-1").status, 202);
  ASSERT_EQ(upload("chart-2").status, 202);
  ASSERT_TRUE(wait_until(
      [&] { return status_of(id).value("events-since-subscription-start", "") == "2"; }));
  EXPECT_TRUE(received(id, "event-notification").empty());
  down_ = false;
  ASSERT_TRUE(wait_until([&] { return delivered_numbers(id).size() == 2; }))
      << ::testing::PrintToString(delivered_numbers(id));
  EXPECT_EQ(delivered_numbers(id), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(status_of(id).at("status"), "active");
  EXPECT_GE(count("SELECT count(*) FROM fhir_out_disclosure WHERE kind = 'handshake' AND "
                  "status_code = 503"),
            3);
  // The handshake went first, every time.
  const auto all = received(id);
  EXPECT_EQ(all.front().type, "handshake");
}

TEST_F(OutboundSubscriptionsIssue18, AnIdleSubscriptionGetsHeartbeats) {
  Json body = subscription("bill-issued", subscriber_->url("/hook"));
  body["channel"]["extension"] = Json::array(
      {{{"url", std::string(kBackport) + "backport-heartbeat-period"}, {"valueUnsignedInt", 1}}});
  const std::string id = create_ok(body);
  ASSERT_TRUE(
      wait_until([&] { return received(id, "heartbeat").size() >= 2; }, std::chrono::seconds(15)));
  EXPECT_EQ(received(id).front().type, "handshake");
}

// "Patient/<id>" of the chart file's Patient.
std::string patient_of(const std::string& raw) {
  const Json bundle = Json::parse(raw);
  for (const auto& e : bundle.at("entry"))
    if (e.at("resource").value("resourceType", "") == "Patient")
      return "Patient/" + e.at("resource").at("id").get<std::string>();
  return "";
}

TEST_F(OutboundSubscriptionsIssue18, QuestionEventsArePublishedWithTheScanThatOpensOrClosesThem) {
  const std::string url = subscriber_->url("/hook");
  const std::string raw = read_file(kGarrett);
  const std::string patient = patient_of(raw);
  ASSERT_FALSE(patient.empty());
  const std::string opened =
      create_ok(subscription("question-opened", url, "full-resource", patient));
  const std::string closed = create_ok(subscription("question-closed", url, "id-only", patient));
  const std::string other = create_ok(subscription("question-opened", url, "id-only", kPatient));
  ASSERT_TRUE(wait_until([&] { return !received(other, "handshake").empty(); }));

  ASSERT_EQ(upload_body("garrett", raw).status, 202);
  ASSERT_TRUE(wait_until([&] {
    return count("SELECT count(*) FROM chart_question") > 0 &&
           static_cast<int>(delivered_foci(opened).size()) ==
               count("SELECT count(*) FROM chart_question");
  })) << ::testing::PrintToString(delivered_foci(opened));
  const std::string first = scalar("SELECT min(id) FROM chart_question");
  EXPECT_EQ(delivered_foci(opened).front(), "Task/question-" + first);
  const auto n = received(opened, "event-notification").front();
  ASSERT_EQ(n.events.at(0).resources.size(), 1u);
  EXPECT_EQ(n.events[0].resources[0].at("for").at("reference"), patient);
  EXPECT_EQ(n.events[0].resources[0].at("status"), "requested");
  EXPECT_TRUE(received(other, "event-notification").empty());
  EXPECT_TRUE(received(closed, "event-notification").empty());

  // The nurse supplies a practitioner and a Coverage: the next scan closes two questions.
  Json bundle = Json::parse(raw);
  for (auto& e : bundle["entry"])
    if (e["resource"]["resourceType"] == "Encounter")
      e["resource"]["participant"] = {{{"individual", {{"reference", "Practitioner/123"}}}}};
  bundle["entry"].push_back(
      {{"fullUrl", "urn:uuid:cov-1"},
       {"resource", {{"resourceType", "Coverage"}, {"id", "cov-1"}, {"status", "active"}}}});
  ASSERT_EQ(upload_body("garrett", bundle.dump()).status, 202);
  ASSERT_TRUE(wait_until([&] { return delivered_foci(closed).size() == 2; }))
      << ::testing::PrintToString(delivered_foci(closed));
  EXPECT_EQ(delivered_numbers(closed), (std::vector<std::int64_t>{1, 2}));
  for (const auto& focus : delivered_foci(closed))
    EXPECT_EQ(count("SELECT count(*) FROM chart_question WHERE status = 'closed' AND "
                    "'Task/question-' || id = '" +
                    focus + "'"),
              1)
        << focus;
}

TEST_F(OutboundSubscriptionsIssue18, BillIssuedIsPublishedWithTheInvoice) {
  const std::string url = subscriber_->url("/hook");
  const std::string raw = read_file(kLemuel);
  const std::string patient = patient_of(raw);
  const std::string bill = create_ok(subscription("bill-issued", url, "full-resource", patient));
  const std::string other = create_ok(subscription("bill-issued", url, "id-only", kPatient));
  ASSERT_TRUE(wait_until([&] { return !received(other, "handshake").empty(); }));

  ASSERT_EQ(upload_body("lemuel", raw).status, 202);
  ASSERT_TRUE(
      wait_until([&] { return delivered_foci(bill).size() == 1; }, std::chrono::seconds(20)))
      << scalar(
             "SELECT json_agg(json_build_object('step', step_key, 's', status, 'e', "
             "error))::text FROM step_run");
  const std::string invoice = scalar("SELECT id FROM invoice");
  EXPECT_EQ(delivered_foci(bill).at(0), "Invoice/invoice-" + invoice);
  const auto n = received(bill, "event-notification").at(0);
  ASSERT_EQ(n.events.at(0).resources.size(), 1u);
  EXPECT_EQ(n.events[0].resources[0].at("resourceType"), "Invoice");
  EXPECT_EQ(n.events[0].resources[0].at("subject").at("reference"), patient);
  EXPECT_TRUE(received(other, "event-notification").empty());
}

// A workflow whose one step fails for good: its run fails, as a chart run does.
constexpr const char* kDoomed = R"(name: doomed
on:
  - event: test.doomed
steps:
  scan:
    handler: missing_field_scan
    retry: { max_attempts: 1 }
)";

TEST_F(OutboundSubscriptionsIssue18, RunFailedIsPublishedForTheRunsPatientWithIdsOnly) {
  app_->publish_workflows({kDoomed});
  const std::string url = subscriber_->url("/hook");
  const std::string failed = create_ok(subscription("run-failed", url, "full-resource", kPatient));
  const std::string other =
      create_ok(subscription("run-failed", url, "id-only", "Patient/someone-else"));
  ASSERT_TRUE(wait_until([&] { return !received(other, "handshake").empty(); }));
  ASSERT_EQ(upload("chart-1").status, 202);  // the chart (and its patient) the run is about

  EventInput doomed;
  doomed.type = "test.doomed";
  doomed.subject = "chart-1";
  doomed.body = {{"chart_id", "chart-1"}, {"revision", 99}};
  const auto run_ids = app_->engine().ingest(doomed).run_ids;
  ASSERT_EQ(run_ids.size(), 1u);
  const std::string focus = "Basic/run-" + std::to_string(run_ids[0]);
  ASSERT_TRUE(wait_until([&] {
    const auto f = delivered_foci(failed);
    return std::find(f.begin(), f.end(), focus) != f.end();
  })) << ::testing::PrintToString(delivered_foci(failed));
  for (const auto& n : received(failed, "event-notification")) {
    if (n.events.at(0).focus != focus) continue;
    ASSERT_EQ(n.events[0].resources.size(), 1u);
    const Json basic = n.events[0].resources[0];
    EXPECT_EQ(basic.at("subject").at("reference"), kPatient);
    // Ids only: not the chart id (a file name can carry a name), not the failure's text.
    EXPECT_THAT(basic.dump(), ::testing::Not(HasSubstr("chart-1")));
    EXPECT_THAT(basic.dump(), ::testing::Not(HasSubstr("not found")));
  }
  EXPECT_TRUE(received(other, "event-notification").empty());
}

TEST_F(OutboundSubscriptionsIssue18, EachNotificationIsADisclosureInTheAuditTrail) {
  const std::string id =
      create_ok(subscription("review-requested", subscriber_->url("/hook"), "full-resource"));
  ASSERT_EQ(upload("chart-1").status, 202);
  ASSERT_TRUE(wait_until([&] { return delivered_numbers(id).size() == 1; }));
  ASSERT_TRUE(wait_until([&] {
    return count(
               "SELECT count(*) FROM audit_event WHERE action = 'fhir.subscription.notify' "
               "AND resource_id = '" +
               id + "'") == 1;
  }));
  const Json detail = Json::parse(
      scalar("SELECT detail::text FROM audit_event WHERE action = 'fhir.subscription.notify'"));
  EXPECT_EQ(detail.at("event_number"), 1);
  EXPECT_EQ(detail.at("focus"), received(id, "event-notification").at(0).events.at(0).focus);
  EXPECT_EQ(std::to_string(detail.at("disclosure_id").get<std::int64_t>()),
            scalar("SELECT id FROM fhir_out_disclosure WHERE kind = 'event-notification'"));
  // Ids only: no patient, no resource.
  EXPECT_THAT(detail.dump(), ::testing::Not(HasSubstr("Patient")));
  EXPECT_THAT(detail.dump(), ::testing::Not(HasSubstr("resourceType")));
}

// The delivery workflow as shipped: an idle deliverer waits minutes between looks.
class OutboundSubscriptionsSlowPoll : public OutboundSubscriptionsIssue18 {
 protected:
  std::string delivery_workflow() const override {
    return handlers::testing::delivery_workflow(
        "poll: 10m, retry_initial: 200ms, retry_max: 1s, timeout: 5s");
  }
};

TEST_F(OutboundSubscriptionsSlowPoll, APublishWakesAnIdleDelivererAtOnce) {
  const std::string id = create_ok(subscription("review-requested", subscriber_->url("/hook")));
  ASSERT_TRUE(wait_until([&] { return status_of(id).value("status", "") == "active"; }));
  // Idle, its next look minutes away.
  ASSERT_TRUE(wait_until([&] {
    return count(
               "SELECT count(*) FROM step_run s JOIN workflow_run r ON r.id = s.run_id WHERE "
               "r.workflow = 'fhir-subscription-delivery' AND s.status = 'waiting' AND "
               "s.wait_until > now() + interval '1 minute'") == 1;
  }));
  ASSERT_EQ(upload("chart-1").status, 202);
  EXPECT_TRUE(
      wait_until([&] { return delivered_numbers(id).size() == 1; }, std::chrono::seconds(5)));
}

// A step timeout shorter than a slow subscriber's answer: the engine retries the step while the
// first attempt's call is still in flight.
class OutboundSubscriptionsShortStepTimeout : public OutboundSubscriptionsIssue18 {
 protected:
  std::string delivery_workflow() const override {
    return handlers::testing::delivery_workflow(
        "poll: 200ms, retry_initial: 200ms, retry_max: 1s, timeout: 5s",
        "retry: { max_attempts: 20, initial: 100ms, max: 200ms }\ntimeout: 1s");
  }
};

TEST_F(OutboundSubscriptionsShortStepTimeout, ARetryNeverSendsBesideAnAttemptStillInFlight) {
  hold_ = true;
  const std::string id = create_ok(subscription("review-requested", subscriber_->url("/hook")));
  ASSERT_TRUE(wait_until([&] { return !received(id, "handshake").empty(); }));
  ASSERT_EQ(upload("chart-1").status, 202);
  ASSERT_EQ(upload("chart-2").status, 202);
  ASSERT_TRUE(
      wait_until([&] { return delivered_numbers(id).size() >= 2; }, std::chrono::seconds(20)))
      << ::testing::PrintToString(delivered_numbers(id));
  EXPECT_TRUE(held_);
  // The held call outlived its attempt (the step's 1 s timeout), so the engine ended that
  // attempt and ran another: without that, nothing here would test the lease. (Attempt numbers
  // do not show it: each wait between events gives its attempt back.)
  EXPECT_GE(count("SELECT count(*) FROM run_history h JOIN workflow_run r ON r.id = h.run_id "
                  "WHERE r.workflow = 'fhir-subscription-delivery' AND h.type IN "
                  "('timed_out', 'lease_expired', 'retried')"),
            1);
  // Each event once, in order: no second call for event 1 while the first was held.
  EXPECT_EQ(delivered_numbers(id), (std::vector<std::int64_t>{1, 2}));
  // No two calls to the subscriber overlapped.
  EXPECT_EQ(count("SELECT count(*) FROM fhir_out_disclosure a JOIN fhir_out_disclosure b ON "
                  "a.subscription_id = b.subscription_id AND a.id < b.id AND b.sent_at < "
                  "coalesce(a.answered_at, 'infinity')"),
            0);
}

}  // namespace
}  // namespace chartflow::handlers::fhir_subscriptions
