// Issue #18 part 1, inbound FHIR subscriptions, through the application as `chartflow serve`
// wires it (AppServer: the shipped fhir-notification workflow, the module's routes, the engine)
// against a small fake FHIR server: handshakes and heartbeats answered and recorded, refusals
// audited, one engine event and one run per notification event and none for a replay, a gap
// asked for through $events, and an id-only focus read by the fhir_fetch handler.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>

#include "handlers/testing/chart_test_data.hpp"
#include "handlers/testing/outbound_subscription_requests.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using chartflow::testing::AppServer;
using chartflow::testing::FakeHttpServer;
using chartflow::testing::FakeResponse;
using chartflow::testing::HttpResponse;
using chartflow::testing::ReceivedRequest;
using chartflow::testing::TempDir;
using chartflow::testing::wait_until;
using ::testing::HasSubstr;

constexpr const char* kSecret = "ehr-sends-this-secret-0123456789";
constexpr const char* kOutboundToken = "chartflow-reads-with-this-token";
constexpr const char* kSubscriptionRef = "Subscription/sub-1";

// The request line's target ("/fhir/Patient/p-1/$everything").
std::string target_of(const ReceivedRequest& r) {
  const auto first = r.head.find(' ');
  return r.head.substr(first + 1, r.head.find(' ', first + 1) - first - 1);
}

Json event_param(std::int64_t number, const std::string& focus) {
  return {{"name", "notification-event"},
          {"part",
           {{{"name", "event-number"}, {"valueString", std::to_string(number)}},
            {{"name", "focus"}, {"valueReference", {{"reference", focus}}}}}}};
}

// A notification Bundle of the R4 backport form. `full`: each event's focus comes with its
// resource (an Encounter enc-<number>).
Json notification(const std::string& type, std::int64_t since,
                  const std::vector<std::int64_t>& events = {}, bool full = true,
                  const std::string& focus_type = "Encounter") {
  Json params = Json::array(
      {{{"name", "subscription"}, {"valueReference", {{"reference", kSubscriptionRef}}}},
       {{"name", "topic"}, {"valueCanonical", "http://example.org/topic/enc"}},
       {{"name", "status"}, {"valueCode", "active"}},
       {{"name", "type"}, {"valueCode", type}},
       {{"name", "events-since-subscription-start"}, {"valueString", std::to_string(since)}}});
  Json entries = Json::array();
  for (auto n : events) {
    const std::string id = fmt::format("{}{}", focus_type == "Patient" ? "p-" : "enc-", n);
    const std::string reference = fmt::format("{}/{}", focus_type, id);
    params.push_back(event_param(n, reference));
    Json entry = {{"fullUrl", "http://ehr.example/fhir/" + reference}};
    if (full) entry["resource"] = {{"resourceType", focus_type}, {"id", id}};
    entries.push_back(entry);
  }
  Json all = Json::array({{{"resource", {{"resourceType", "Parameters"}, {"parameter", params}}}}});
  for (auto& e : entries) all.push_back(e);
  return {{"resourceType", "Bundle"}, {"type", "history"}, {"entry", all}};
}

// `bundle` as sent for another of the server's Subscriptions.
Json with_subscription(Json bundle, const std::string& reference) {
  for (auto& p : bundle["entry"][0]["resource"]["parameter"])
    if (p.at("name") == "subscription") p["valueReference"]["reference"] = reference;
  return bundle;
}

class FhirSubscriptionsIssue18 : public chartflow::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    std::ofstream(dir_.path() / "secret") << kSecret << "\n";
    std::ofstream(dir_.path() / "token") << kOutboundToken << "\n";
    fhir_ = std::make_unique<FakeHttpServer>(
        [this](const ReceivedRequest& r, int) { return answer(r); });
    const std::string secret = (dir_.path() / "secret").string();
    chart_.fhir_subscriptions =
        Json{{"timeout", "5s"},
             {"subscriptions",
              {{{"name", "ehr"},
                {"secret_file", secret},
                {"fhir_base_url", fhir_->url("/fhir")},
                {"events_operation", true},
                {"auth", {{"type", "bearer"}, {"token_file", (dir_.path() / "token").string()}}}},
               {{"name", "quiet"}, {"secret_file", secret}, {"header", "X-Hook-Secret"}}}}};
    start(chartflow::testing::test_server_settings());
    operator_ = chartflow::testing::create_token(dsn(), "operator");
  }
  void start(http::ServerSettings server) {
    app_.reset();
    app_ = std::make_unique<AppServer>(dsn(), std::move(server), nullptr, app::HttpRouteOptions{},
                                       chart_);
  }
  void TearDown() override {
    app_.reset();
    fhir_.reset();
    PgTest::TearDown();
  }

  // The fake FHIR server: $events answers with the asked-for events (full-resource), reads
  // answer with the resource or a Patient's $everything Bundle.
  FakeResponse answer(const ReceivedRequest& r) {
    const std::string target = target_of(r);
    if (target.find("/$events?") != std::string::npos) {
      if (events_failures_ > 0) {
        --events_failures_;
        return {503, R"({"resourceType": "OperationOutcome"})"};
      }
      const auto since = std::stoll(target.substr(target.find("eventsSinceNumber=") + 18));
      const auto until = std::stoll(target.substr(target.find("eventsUntilNumber=") + 18));
      std::vector<std::int64_t> numbers;
      for (auto n = since; n <= until; ++n) numbers.push_back(n);
      return {200, notification("query-event", until, numbers).dump()};
    }
    if (target.starts_with("/fhir/Patient/p-") && target.ends_with("/$everything") &&
        !everything_.empty())
      return {200, everything_};
    if (target == "/fhir/Patient/p-1/$everything")
      return {200, Json{{"resourceType", "Bundle"},
                        {"type", "searchset"},
                        {"entry",
                         {{{"resource", {{"resourceType", "Patient"}, {"id", "p-1"}}}},
                          {{"resource", {{"resourceType", "Encounter"}, {"id", "e-1"}}}}}}}
                       .dump()};
    if (target == "/fhir/Encounter/enc-7")
      return {200, Json{{"resourceType", "Encounter"}, {"id", "enc-7"}}.dump()};
    return {404, R"({"resourceType": "OperationOutcome"})"};
  }

  HttpResponse notify(const std::string& name, const Json& bundle,
                      const std::string& secret = kSecret) {
    std::map<std::string, std::string> headers = {{"Content-Type", "application/fhir+json"}};
    if (!secret.empty()) headers["Authorization"] = "Bearer " + secret;
    return app_->call("POST", "/fhir/subscriptions/" + name, "", bundle.dump(), headers);
  }
  Json status(const std::string& name) {
    auto r = app_->call("GET", "/fhir/subscriptions/" + name + "/$status", operator_);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }
  int notification_events() {
    return count("SELECT count(*) FROM event WHERE type = 'fhir.notification'");
  }
  std::vector<std::string> fhir_targets() {
    std::vector<std::string> out;
    for (const auto& r : fhir_->requests()) out.push_back(target_of(r));
    return out;
  }

  std::atomic<int> events_failures_{0};  // $events answers 503 this many times first
  std::string everything_;  // each Patient/p-N/$everything answers this Bundle, when set
  chartflow::handlers::ChartHandlerOptions chart_;
  TempDir dir_{"cf-fhir-subs"};
  std::unique_ptr<FakeHttpServer> fhir_;
  std::unique_ptr<AppServer> app_;
  std::string operator_;
};

TEST_F(FhirSubscriptionsIssue18, HandshakeAndHeartbeatAreAnsweredAndRecordedWithoutAnEvent) {
  auto hs = notify("ehr", notification("handshake", 0));
  ASSERT_EQ(hs.status, 200) << hs.body;
  EXPECT_EQ(hs.json().at("type"), "handshake");
  EXPECT_EQ(hs.json().at("form"), "r4-backport");
  Json s = status("ehr");
  EXPECT_EQ(s.at("last_type"), "handshake");
  EXPECT_FALSE(s.at("handshake_at").is_null());
  EXPECT_EQ(s.at("subscription_ref"), kSubscriptionRef);

  auto hb = notify("ehr", notification("heartbeat", 0));
  ASSERT_EQ(hb.status, 200) << hb.body;
  s = status("ehr");
  EXPECT_EQ(s.at("last_type"), "heartbeat");
  EXPECT_FALSE(s.at("heartbeat_at").is_null());
  EXPECT_EQ(s.at("gaps"), Json::array());
  EXPECT_EQ(notification_events(), 0);
  EXPECT_TRUE(fhir_->requests().empty());
}

TEST_F(FhirSubscriptionsIssue18, RefusalsAreAuditedWithoutPatientData) {
  const Json bundle = notification("event-notification", 1, {1});
  auto wrong = notify("ehr", bundle, "not-the-secret");
  EXPECT_EQ(wrong.status, 401) << wrong.body;
  auto none = notify("ehr", bundle, "");
  EXPECT_EQ(none.status, 401) << none.body;
  // A bearer token of the API is no subscription secret.
  auto api = app_->call("POST", "/fhir/subscriptions/ehr", operator_, bundle.dump(),
                        {{"Content-Type", "application/fhir+json"}});
  EXPECT_EQ(api.status, 401) << api.body;
  auto unknown = notify("nobody", bundle);
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  // The header of its own: the secret as is.
  auto quiet = app_->call("POST", "/fhir/subscriptions/quiet", "", bundle.dump(),
                          {{"Content-Type", "application/fhir+json"}, {"X-Hook-Secret", "no"}});
  EXPECT_EQ(quiet.status, 401) << quiet.body;

  EXPECT_EQ(notification_events(), 0);
  // Unauthenticated refusals are counted per (remote, minute) like the API's unknown tokens,
  // not written one record each: a sender retrying with a stale secret cannot flood the trail.
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'fhir.notification'"), 0);
  EXPECT_EQ(count("SELECT coalesce(sum(count), 0) FROM audit_refusal WHERE "
                  "action = 'fhir.notification' AND outcome = 'denied'"),
            5);
  EXPECT_EQ(count("SELECT count(*) FROM audit_refusal WHERE action = 'fhir.notification' AND "
                  "path NOT LIKE '/fhir/subscriptions/%'"),
            0);
  EXPECT_EQ(count("SELECT count(*) FROM audit_refusal WHERE coalesce(reason, '') LIKE "
                  "'%enc-1%' OR coalesce(reason, '') LIKE '%" +
                  std::string(kSecret) + "%'"),
            0);

  auto ok = app_->call("POST", "/fhir/subscriptions/quiet", "", bundle.dump(),
                       {{"Content-Type", "application/fhir+json"}, {"X-Hook-Secret", kSecret}});
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(FhirSubscriptionsIssue18, MalformedNotificationsAre400NamingTheProblem) {
  Json bundle = notification("event-notification", 1, {1});
  bundle["type"] = "collection";
  auto r = notify("ehr", bundle);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_THAT(r.body, HasSubstr("Bundle.type must be history"));
  auto not_json = app_->call("POST", "/fhir/subscriptions/ehr", "", "{not json",
                             {{"Content-Type", "application/fhir+json"},
                              {"Authorization", std::string("Bearer ") + kSecret}});
  EXPECT_EQ(not_json.status, 400) << not_json.body;
  EXPECT_EQ(notification_events(), 0);
}

TEST_F(FhirSubscriptionsIssue18, AnEventStartsOneRunAndAReplayNothing) {
  const Json bundle = notification("event-notification", 1, {1});
  auto first = notify("ehr", bundle);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.json().at("accepted"), Json::array({1}));
  EXPECT_EQ(first.json().at("content"), "full-resource");
  ASSERT_EQ(first.json().at("runs").size(), 1u) << first.body;
  const auto run = first.json().at("runs")[0].get<std::int64_t>();
  EXPECT_EQ(scalar("SELECT workflow FROM workflow_run WHERE id = " + std::to_string(run)),
            "fhir-notification");
  const Json body =
      Json::parse(scalar("SELECT body::text FROM event WHERE type = "
                         "'fhir.notification'"));
  EXPECT_EQ(body.at("subscription"), "ehr");
  EXPECT_EQ(body.at("topic"), "http://example.org/topic/enc");
  EXPECT_EQ(body.at("focus"), "Encounter/enc-1");
  EXPECT_EQ(body.at("event_number"), 1);
  ASSERT_EQ(body.at("resources").size(), 1u);
  EXPECT_EQ(body.at("resources")[0].at("id"), "enc-1");
  // full-resource: nothing to fetch, the run ends with the step skipped.
  EXPECT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run)) ==
           "succeeded";
  }));

  auto replay = notify("ehr", bundle);
  ASSERT_EQ(replay.status, 200) << replay.body;
  EXPECT_EQ(replay.json().at("accepted"), Json::array());
  EXPECT_EQ(replay.json().at("duplicates"), Json::array({1}));
  EXPECT_EQ(replay.json().at("runs"), Json::array());
  EXPECT_EQ(notification_events(), 1);
  EXPECT_EQ(count("SELECT count(*) FROM workflow_run"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'fhir.notification' AND "
                  "outcome = 'success'"),
            1);
}

TEST_F(FhirSubscriptionsIssue18, AGapIsAskedForThroughEventsAndIngested) {
  ASSERT_EQ(notify("ehr", notification("event-notification", 1, {1})).status, 200);
  auto skipped = notify("ehr", notification("event-notification", 3, {3}));
  ASSERT_EQ(skipped.status, 200) << skipped.body;
  // The sender is answered at once; asking for the gap is a durable step of its own.
  EXPECT_EQ(skipped.json().at("accepted"), Json::array({3})) << skipped.body;
  EXPECT_EQ(skipped.json().at("gaps"), Json::array({{{"from", 2}, {"to", 2}}})) << skipped.body;
  ASSERT_EQ(skipped.json().at("recovery").at("runs").size(), 1u) << skipped.body;
  const auto recovery = skipped.json().at("recovery").at("runs")[0].get<std::int64_t>();
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(recovery)) ==
           "succeeded";
  })) << scalar("SELECT string_agg(coalesce(error, ''), ';') FROM step_run WHERE run_id = " +
                std::to_string(recovery));
  EXPECT_EQ(scalar("SELECT workflow FROM workflow_run WHERE id = " + std::to_string(recovery)),
            "fhir-gap-recovery");
  EXPECT_EQ(fhir_targets(),
            std::vector<std::string>{
                "/fhir/Subscription/sub-1/$events?eventsSinceNumber=2&eventsUntilNumber=2"});
  EXPECT_EQ(fhir_->requests().at(0).header("Authorization"),
            std::string("Bearer ") + kOutboundToken);
  EXPECT_EQ(notification_events(), 3);
  EXPECT_EQ(scalar("SELECT via FROM fhir_subscription_event WHERE event_number = 2"), "events");
  const Json s = status("ehr");
  EXPECT_EQ(s.at("contiguous"), 3);
  EXPECT_EQ(s.at("received"), 3);
  EXPECT_EQ(s.at("gaps"), Json::array());
}

// The FHIR server cannot answer $events for a while: the notification is still answered 200 at
// once (never held open on the EHR's call), and the recovery step retries until it can.
TEST_F(FhirSubscriptionsIssue18, GapRecoveryRetriesWhileTheServerIsDown) {
  events_failures_ = 2;
  ASSERT_EQ(notify("ehr", notification("event-notification", 1, {1})).status, 200);
  auto skipped = notify("ehr", notification("event-notification", 4, {4}));
  ASSERT_EQ(skipped.status, 200) << skipped.body;
  EXPECT_EQ(skipped.json().at("gaps"), Json::array({{{"from", 2}, {"to", 3}}}));
  ASSERT_TRUE(
      wait_until([&] { return status("ehr").at("contiguous") == 4; }, std::chrono::seconds(30)))
      << status("ehr").dump();
  EXPECT_EQ(notification_events(), 4);
  EXPECT_EQ(events_failures_.load(), 0);
  const auto recovery = skipped.json().at("recovery").at("runs")[0].get<std::int64_t>();
  EXPECT_GE(count("SELECT attempt FROM step_run WHERE run_id = " + std::to_string(recovery)), 3);
  EXPECT_EQ(status("ehr").at("recovery_error"), "");
}

// gaps are computed in the database: with more received numbers above the contiguous mark than
// any read into memory would hold, the missing one is still the only gap.
TEST_F(FhirSubscriptionsIssue18, GapsAreExactWithManyEventsReceivedPastOne) {
  ASSERT_EQ(app_->call("POST", "/fhir/subscriptions/quiet", "",
                       notification("event-notification", 2, {2}).dump(),
                       {{"Content-Type", "application/fhir+json"}, {"X-Hook-Secret", kSecret}})
                .status,
            200);
  scalar(
      "INSERT INTO fhir_subscription_event (name, event_number, via) "
      "SELECT 'quiet', n, 'notification' FROM generate_series(3, 150002) n");
  scalar("UPDATE fhir_subscription_state SET announced = 150002 WHERE name = 'quiet'");
  EXPECT_EQ(status("quiet").at("gaps"), Json::array({{{"from", 1}, {"to", 1}}}));
}

// The EHR re-creates its Subscription (a new Subscription id): its event numbers start again
// at 1 and must not be taken for the old subscription's duplicates.
TEST_F(FhirSubscriptionsIssue18, ARecreatedSubscriptionStartsANewCount) {
  ASSERT_EQ(notify("ehr", notification("handshake", 0)).status, 200);
  ASSERT_EQ(notify("ehr", notification("event-notification", 2, {1, 2})).status, 200);
  ASSERT_EQ(
      notify("ehr", with_subscription(notification("handshake", 0), "Subscription/sub-2")).status,
      200);
  auto again = notify(
      "ehr", with_subscription(notification("event-notification", 1, {1}), "Subscription/sub-2"));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json().at("accepted"), Json::array({1})) << again.body;
  EXPECT_EQ(again.json().at("duplicates"), Json::array());
  EXPECT_EQ(notification_events(), 3);
  Json s = status("ehr");
  EXPECT_EQ(s.at("subscription_ref"), "Subscription/sub-2");
  EXPECT_EQ(s.at("contiguous"), 1);
  EXPECT_EQ(s.at("epoch"), 2);
  EXPECT_EQ(s.at("gaps"), Json::array());
  // A replay within the new count is still a duplicate.
  auto replay = notify(
      "ehr", with_subscription(notification("event-notification", 1, {1}), "Subscription/sub-2"));
  EXPECT_EQ(replay.json().at("duplicates"), Json::array({1})) << replay.body;

  // The same Subscription handshaking with a count below what it sent before restarted its
  // count (a server that lost its state): a new epoch too.
  ASSERT_EQ(
      notify("ehr", with_subscription(notification("handshake", 0), "Subscription/sub-2")).status,
      200);
  auto restarted = notify(
      "ehr", with_subscription(notification("event-notification", 1, {1}), "Subscription/sub-2"));
  EXPECT_EQ(restarted.json().at("accepted"), Json::array({1})) << restarted.body;
  EXPECT_EQ(status("ehr").at("epoch"), 3);
  EXPECT_EQ(notification_events(), 4);
}

TEST_F(FhirSubscriptionsIssue18, AGapWithoutEventsOperationIsShownInStatus) {
  // "quiet" has no FHIR base URL: a heartbeat announcing 3 events after event 1 leaves 2..3.
  auto send = [&](const Json& bundle) {
    return app_->call("POST", "/fhir/subscriptions/quiet", "", bundle.dump(),
                      {{"Content-Type", "application/fhir+json"}, {"X-Hook-Secret", kSecret}});
  };
  ASSERT_EQ(send(notification("event-notification", 1, {1})).status, 200);
  auto hb = send(notification("heartbeat", 3));
  ASSERT_EQ(hb.status, 200) << hb.body;
  const Json gaps = Json::array({{{"from", 2}, {"to", 3}}});
  EXPECT_EQ(hb.json().at("gaps"), gaps);
  EXPECT_EQ(status("quiet").at("gaps"), gaps);
  EXPECT_TRUE(fhir_->requests().empty());
  // The missed event arrives late after all: the gap narrows.
  ASSERT_EQ(send(notification("event-notification", 2, {2})).status, 200);
  EXPECT_EQ(status("quiet").at("gaps"), Json::array({{{"from", 3}, {"to", 3}}}));
}

TEST_F(FhirSubscriptionsIssue18, IdOnlyFocusIsFetchedByTheFetchHandler) {
  ASSERT_EQ(notify("ehr", notification("handshake", 0)).status, 200);
  auto patient = notify("ehr", notification("event-notification", 1, {1}, false, "Patient"));
  ASSERT_EQ(patient.status, 200) << patient.body;
  EXPECT_EQ(patient.json().at("content"), "id-only");
  ASSERT_EQ(patient.json().at("runs").size(), 1u);
  const auto run = patient.json().at("runs")[0].get<std::int64_t>();
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run)) ==
           "succeeded";
  })) << scalar("SELECT error FROM step_run WHERE run_id = " + std::to_string(run));
  EXPECT_EQ(fhir_targets(), std::vector<std::string>{"/fhir/Patient/p-1/$everything"});
  EXPECT_EQ(fhir_->requests().at(0).header("Authorization"),
            std::string("Bearer ") + kOutboundToken);
  EXPECT_EQ(scalar("SELECT content->>'resourceType' FROM fhir_fetched_resource WHERE name = 'ehr' "
                   "AND event_number = 1"),
            "Bundle");
  const Json output = Json::parse(
      scalar("SELECT output::text FROM step_run WHERE step_key = 'fetch' AND run_id = " +
             std::to_string(run)));
  EXPECT_EQ(output.at("fetched"), true);
  EXPECT_EQ(output.at("reference"), "Patient/p-1");
  EXPECT_EQ(output.at("entries"), 2);

  // Any other focus is read as itself.
  Json encounter = notification("event-notification", 7, {7}, false);
  // Events 2..6 were never sent: asked for, answered; the fetch of enc-7 follows.
  auto r = notify("ehr", encounter);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(wait_until([&] {
    return count("SELECT count(*) FROM fhir_fetched_resource WHERE event_number = 7") == 1;
  }));
  EXPECT_EQ(scalar("SELECT content->>'id' FROM fhir_fetched_resource WHERE event_number = 7"),
            "enc-7");
}

// The round trip of docs/fhir.md: the EHR announces a patient (id-only), chartflow reads the
// patient's $everything, stores it as a chart through the chart intake (audited as the
// subscription's upload), chart-update runs for it, and a subscriber of review-requested for
// that patient hears of the doctor's review. The same content announced again is no second
// revision and no second run.
TEST_F(FhirSubscriptionsIssue18, AnEhrsNotificationBecomesAChartWhoseReviewReachesASubscriber) {
  everything_ =
      handlers::testing::read_file(handlers::testing::charts_dir() /
                                   "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-"
                                   "8ca871d7.json");
  const std::string patient = "563460b4-b997-4772-a548-a9f877eb4c12";  // the Bundle's Patient
  std::mutex mu;
  std::vector<std::string> received;
  FakeHttpServer subscriber([&](const ReceivedRequest& r, int) {
    std::lock_guard lock(mu);
    received.push_back(r.body);
    return FakeResponse{200, "{}"};
  });
  auto notified_of_review = [&] {
    std::lock_guard lock(mu);
    for (const auto& body : received)
      if (body.find("event-notification") != std::string::npos &&
          body.find("Task/review-") != std::string::npos)
        return true;
    return false;
  };
  app_->publish_workflows({handlers::testing::fast_delivery_workflow()});
  const std::string admin = chartflow::testing::create_token(dsn(), "admin");
  auto created =
      app_->call("POST", "/fhir/Subscription", admin,
                 handlers::testing::SubscriptionRequest("review-requested", subscriber.url("/hook"))
                     .patient("Patient/" + patient)
                     .json()
                     .dump(),
                 {{"Content-Type", "application/fhir+json"}});
  ASSERT_EQ(created.status, 201) << created.body;

  ASSERT_EQ(notify("ehr", notification("handshake", 0)).status, 200);
  auto r = notify("ehr", notification("event-notification", 1, {1}, false, "Patient"));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto run = r.json().at("runs")[0].get<std::int64_t>();
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run)) ==
           "succeeded";
  }))
      << scalar(
             "SELECT string_agg(step_key || ': ' || coalesce(error, ''), '; ') FROM step_run "
             "WHERE run_id = " +
             std::to_string(run));
  const Json out = Json::parse(
      scalar("SELECT output::text FROM step_run WHERE step_key = 'chart' AND run_id = " +
             std::to_string(run)));
  EXPECT_EQ(out.at("chart"), true) << out.dump();
  EXPECT_EQ(out.at("chart_id"), patient);
  EXPECT_EQ(out.at("revision"), 1);
  ASSERT_EQ(out.at("runs").size(), 1U) << out.dump();
  EXPECT_EQ(scalar("SELECT workflow FROM workflow_run WHERE id = " + out.at("runs")[0].dump()),
            "chart-update");
  EXPECT_EQ(scalar("SELECT actor || ' ' || resource_id FROM audit_event WHERE action = "
                   "'chart.upload'"),
            "fhir-subscription:ehr " + patient);
  EXPECT_TRUE(wait_until(notified_of_review, std::chrono::seconds(30)))
      << "the subscriber heard nothing of the review";

  // The patient announced again with nothing new: no new revision (the scan's write-back of
  // its questions is the second), no second run.
  const int revisions = count("SELECT count(*) FROM chart_revision");
  auto again = notify("ehr", notification("event-notification", 2, {2}, false, "Patient"));
  ASSERT_EQ(again.status, 200) << again.body;
  const auto second = again.json().at("runs")[0].get<std::int64_t>();
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(second)) ==
           "succeeded";
  }));
  EXPECT_EQ(scalar("SELECT output->>'duplicate' FROM step_run WHERE step_key = 'chart' AND "
                   "run_id = " +
                   std::to_string(second)),
            "true");
  EXPECT_EQ(count("SELECT count(*) FROM chart_revision"), revisions);
  EXPECT_EQ(count("SELECT count(*) FROM workflow_run WHERE workflow = 'chart-update'"), 1);
}

// A Bundle read from the EHR is held to the limits of every other door: over the server's
// --bundle-entry-limit it fails the run naming the limit, and no chart is stored.
TEST_F(FhirSubscriptionsIssue18, AFetchedBundleOverTheUploadLimitsIsNoChart) {
  // Two entries pass (a notification Bundle has its status and the focus), three do not.
  auto server = chartflow::testing::test_server_settings();
  server.limits.bundle_entries = 2;
  start(server);
  everything_ = Json{{"resourceType", "Bundle"},
                     {"type", "searchset"},
                     {"entry",
                      {{{"resource", {{"resourceType", "Patient"}, {"id", "p-1"}}}},
                       {{"resource", {{"resourceType", "Encounter"}, {"id", "e-1"}}}},
                       {{"resource", {{"resourceType", "Encounter"}, {"id", "e-2"}}}}}}}
                    .dump();
  ASSERT_EQ(notify("ehr", notification("handshake", 0)).status, 200);
  auto r = notify("ehr", notification("event-notification", 1, {1}, false, "Patient"));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto run = r.json().at("runs")[0].get<std::int64_t>();
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run)) == "failed";
  }));
  EXPECT_THAT(scalar("SELECT error FROM step_run WHERE step_key = 'chart' AND run_id = " +
                     std::to_string(run)),
              HasSubstr("the fetched Bundle breaks the upload limits: the Bundle has more than 2 "
                        "entries"));
  EXPECT_EQ(count("SELECT count(*) FROM chart_revision"), 0);
}

}  // namespace
}  // namespace chartflow::handlers::fhir_subscriptions
