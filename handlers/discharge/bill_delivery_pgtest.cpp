// Issue #15 item 1: a released patient's bill goes out once, byte for byte the same under its one
// key, however often a receiver fails or a step's transaction is lost after the receiver answered;
// every attempt at an outside call (bill channel or insurer) is in the database, started and
// answered. Everything runs through the application as `chartflow serve` wires it (AppServer: the
// shipped chart-update workflow, the engine's own step context, commit, rollback and retries);
// only the insurer, the bill webhook and the bill folder point at the test's, through the
// environment variables the settings files read. A lost step transaction is a real one: the
// worker's connection dies inside the commit that would record the step done, and the engine runs
// the step again.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>

#include "core/trace.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers {
namespace {

using chartflow::testing::AppServer;
using chartflow::testing::FakeHttpServer;
using chartflow::testing::HttpResponse;
using chartflow::testing::ReceivedRequest;
using chartflow::testing::TempDir;
using chartflow::testing::wait_until;
namespace data = chartflow::handlers::testing;

constexpr const char* kChart = "lemuel";  // released, one payor, two ledger entries
const char* const kChartFile =
    "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";
constexpr std::chrono::seconds kStepTimeout{60};
// A held receiver answers within this, under the 10 s call timeout of settings/insurers.yaml, so
// the holding attempt ends with the receiver's answer rather than its own timeout.
constexpr std::chrono::seconds kHoldAtMost{8};

class BillGoesOutOnceIssue15 : public chartflow::testing::PgTest {
 protected:
  void TearDown() override {
    app_.reset();
    ::unsetenv("CHARTFLOW_INSURER_URL");
    ::unsetenv("CHARTFLOW_BILL_DIR");
    ::unsetenv("CHARTFLOW_BILL_WEBHOOK_URL");
    PgTest::TearDown();
  }

  // Starts the application; bills go to the folder bills() and, with `webhook`, to it as well.
  void start(const FakeHttpServer& insurer, const FakeHttpServer* webhook) {
    ::setenv("CHARTFLOW_INSURER_URL", insurer.url("/claims").c_str(), 1);
    ::setenv("CHARTFLOW_BILL_DIR", bills().c_str(), 1);
    if (webhook != nullptr)
      ::setenv("CHARTFLOW_BILL_WEBHOOK_URL", webhook->url("/bills").c_str(), 1);
    else
      ::unsetenv("CHARTFLOW_BILL_WEBHOOK_URL");
    app_ = std::make_unique<AppServer>(dsn());
    admin_ = chartflow::testing::create_token(dsn(), "admin");
  }

  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return app_->call(method, target, admin_, body, {{"Content-Type", "application/fhir+json"}});
  }

  // Uploads the chart over PUT /v1/charts and returns the run the upload started.
  std::int64_t upload() {
    auto r = call("PUT", std::string("/v1/charts/") + kChart,
                  data::read_file(data::charts_dir() / kChartFile));
    EXPECT_EQ(r.status, 202) << r.body;
    const Json body = r.json();
    if (!body.is_object() || body.value("runs", Json::array()).size() != 1) {
      ADD_FAILURE() << "the upload started no single run: " << r.body;
      return 0;
    }
    return body.at("runs")[0].get<std::int64_t>();
  }

  // A second run of the same chart: the upload's event delivered again.
  std::int64_t replay() {
    store::EventInput again;
    again.type = "chart.uploaded";
    again.body = Json::parse(scalar("SELECT body::text FROM event ORDER BY id LIMIT 1"));
    const auto ingested = app_->engine().ingest(again);
    EXPECT_EQ(ingested.run_ids.size(), 1U);
    return ingested.run_ids.empty() ? 0 : ingested.run_ids.front();
  }

  std::string step_row(std::int64_t run_id, const std::string& step, const std::string& column) {
    return scalar("SELECT " + column + " FROM step_run WHERE run_id = " + std::to_string(run_id) +
                  " AND step_key = '" + step + "'");
  }
  bool wait_step(std::int64_t run_id, const std::string& step, const std::string& status) {
    return wait_until([&] { return step_row(run_id, step, "status") == status; }, kStepTimeout);
  }
  // True once the step has failed at least twice because another step held what it sends.
  bool wait_kept_retrying(std::int64_t run_id, const std::string& step) {
    return wait_until(
        [&] {
          return step_row(run_id, step,
                          "status = 'retrying' AND attempt >= 2 AND "
                          "error LIKE '%being sent by another step%'") == "t";
        },
        kHoldAtMost - std::chrono::seconds(1));
  }

  void approve_review(std::int64_t run_id) {
    ASSERT_TRUE(wait_step(run_id, "review", "waiting"));
    const std::string review =
        scalar("SELECT id FROM review WHERE run_id = " + std::to_string(run_id));
    ASSERT_FALSE(review.empty());
    auto decided = call("POST", "/v1/reviews/" + review + "/decision",
                        Json{{"decision", "approve"}, {"reason", "test"}}.dump());
    ASSERT_EQ(decided.status, 200) << decided.body;
  }

  // The first commit that would record any of `steps` (step rows: `send_bill[1]` is an element)
  // succeeded loses its connection (the worker sees a broken connection, as after a network
  // failure or a database restart); later commits pass. commits_of() tells how many commits of
  // the step were tried.
  static std::string sequence_of(const std::string& step) {
    return "lost_" + std::regex_replace(step, std::regex("[^a-z0-9_]"), "_");
  }
  void lose_first_commit_of(const std::vector<std::string>& steps) {
    std::string keys;
    for (const auto& step : steps) {
      scalar("CREATE SEQUENCE " + sequence_of(step));
      keys += (keys.empty() ? "'" : ", '") + step + "'";
    }
    scalar(
        "CREATE FUNCTION lose_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF nextval(('lost_' || regexp_replace(NEW.step_key, '[^a-z0-9_]', '_', 'g'))::regclass) "
        "= 1 THEN "
        "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NULL; END $$");
    scalar(
        "CREATE CONSTRAINT TRIGGER lose_first_commit AFTER UPDATE ON step_run DEFERRABLE "
        "INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status <> "
        "'succeeded' AND NEW.step_key IN (" +
        keys + ")) EXECUTE FUNCTION lose_first_commit()");
  }
  std::int64_t commits_of(const std::string& step) {
    return count("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM " + sequence_of(step));
  }

  std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }

  Json deliveries() {
    auto r = call("GET", std::string("/v1/charts/") + kChart + "/deliveries");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }

  std::filesystem::path bills() const { return bill_root_.path() / "bills"; }
  std::filesystem::path bill_file() const {
    return bills() / (std::string(kChart) + "-invoice.txt");
  }

  TempDir bill_root_{"chartflow-bill-once"};
  std::unique_ptr<AppServer> app_;
  std::string admin_;
};

std::set<std::string> issued_times(const std::string& text) {
  std::set<std::string> out;
  static const std::regex kIssued(R"(Issued:\s+(\S+))");
  for (std::sregex_iterator it(text.begin(), text.end(), kIssued), end; it != end; ++it)
    out.insert((*it)[1].str());
  return out;
}

std::vector<ReceivedRequest> with_key_part(const FakeHttpServer& server, const std::string& part) {
  std::vector<ReceivedRequest> out;
  for (const auto& r : server.requests())
    if (r.header("Idempotency-Key").find(part) != std::string::npos) out.push_back(r);
  return out;
}

const std::string kWebhookAttempts =
    " FROM bill_delivery_attempt a JOIN bill_delivery d ON d.id = a.delivery_id "
    "WHERE d.channel = 'webhook'";

TEST_F(BillGoesOutOnceIssue15, AWebhookFailingFourTimesGetsOneBillByteIdenticalUnderOneKey) {
  // A hard link to the bill file as the first webhook request after the folder's delivery finds
  // it (send_bill[0] and send_bill[1] run side by side) keeps that file's inode: a later rewrite
  // (a new file renamed into place) is then told apart even where inode numbers are reused.
  const auto witness = bill_root_.path() / "first-bill-witness";
  std::atomic<bool> linked{false};
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([&](const ReceivedRequest&, int i) {
    if (!linked) {
      std::error_code error;
      std::filesystem::create_hard_link(bill_file(), witness, error);
      linked = !error;
    }
    return i < 4 ? 500 : 200;
  });
  start(insurer, &webhook);
  const auto run_id = upload();
  ASSERT_EQ(scalar("SELECT body->>'released' FROM event ORDER BY id LIMIT 1"), "true");
  approve_review(run_id);
  ASSERT_TRUE(wait_step(run_id, "send_bill", "succeeded"))
      << step_row(run_id, "send_bill", "error");
  ASSERT_TRUE(wait_until(
      [&] {
        return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(run_id)) ==
               "succeeded";
      },
      kStepTimeout));
  // The engine retried the webhook's element after each refusal, one attempt per webhook call;
  // the folder's element ran once.
  EXPECT_EQ(step_row(run_id, "send_bill[1]", "attempt"), "5");
  EXPECT_EQ(step_row(run_id, "send_bill[0]", "attempt"), "1");

  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 1);
  const std::string invoice_id = scalar("SELECT id FROM invoice");
  const std::string bill_text = scalar("SELECT bill_text FROM invoice");

  const auto requests = webhook.requests();
  ASSERT_EQ(requests.size(), 5U) << "four 500s, then the 200";
  std::set<std::string> issued;
  std::set<std::string> bodies;
  for (const auto& r : requests) {
    bodies.insert(r.body);
    EXPECT_EQ(r.header("Idempotency-Key"), std::string("bill:") + kChart + ":webhook");
    const Json body = Json::parse(r.body);
    EXPECT_EQ(std::to_string(body.value("invoice_id", 0)), invoice_id);
    EXPECT_EQ(body.value("bill_text", ""), bill_text);
    for (const auto& t : issued_times(body.value("bill_text", ""))) issued.insert(t);
  }
  EXPECT_EQ(bodies.size(), 1U) << "resends differ from the first bill";

  ASSERT_TRUE(linked) << "no bill file by the webhook's last call";
  ASSERT_TRUE(std::filesystem::exists(bill_file()));
  EXPECT_TRUE(std::filesystem::equivalent(bill_file(), witness)) << "the bill file was rewritten";
  const std::string file = data::read_file(bill_file());
  EXPECT_EQ(file, bill_text);
  for (const auto& t : issued_times(file)) issued.insert(t);
  EXPECT_EQ(issued.size(), 1U) << "one Issued: time in everything sent";

  // The insurer's final notification: queued once, sent once.
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE kind = 'final'"), 1);
  EXPECT_EQ(scalar("SELECT status FROM insurer_outbox WHERE kind = 'final'"), "delivered");
  EXPECT_EQ(with_key_part(insurer, ":final:").size(), 1U);

  // Every attempt is on record, answered.
  EXPECT_EQ(
      scalar("SELECT string_agg(a.status_code::text, ',' ORDER BY a.attempt)" + kWebhookAttempts),
      "500,500,500,500,200");
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery_attempt WHERE answered_at IS NULL"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery_attempt a JOIN bill_delivery d ON "
                  "d.id = a.delivery_id WHERE d.channel = 'folder'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery WHERE status = 'delivered'"), 2);

  const Json shown = deliveries();
  ASSERT_EQ(shown["bill_deliveries"].size(), 2U);
  for (const auto& d : shown["bill_deliveries"]) {
    EXPECT_EQ(d.value("status", ""), "delivered");
    const Json attempts = d.value("attempts_detail", Json::array());
    EXPECT_EQ(attempts.size(), d.value("channel", "") == "webhook" ? 5U : 1U);
    for (const auto& a : attempts) EXPECT_FALSE(a.value("answered_at", Json()).is_null());
  }
}

TEST_F(BillGoesOutOnceIssue15, AnInsurersAnswerOutlivesTheStepTransactionThatWasLost) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  // The claim (insurance) and the final notification (final_notice): each step's first commit
  // is lost after its insurer answered.
  lose_first_commit_of({"insurance", "final_notice"});
  start(insurer, nullptr);
  const auto run_id = upload();
  ASSERT_TRUE(wait_step(run_id, "insurance", "succeeded"));
  ASSERT_TRUE(wait_step(run_id, "final_notice", "succeeded"));
  EXPECT_EQ(commits_of("insurance"), 2) << "the insurance step's first commit was not lost";
  EXPECT_EQ(commits_of("final_notice"), 2) << "the final_notice step's first commit was not lost";

  std::set<std::string> keys;
  for (const auto& r : insurer.requests()) keys.insert(r.header("Idempotency-Key"));
  EXPECT_EQ(keys.size(), 2U) << "the claim and the final notification";
  EXPECT_EQ(insurer.requests().size(), 2U) << "a notification already answered was sent again";
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status <> 'delivered'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM insurer_delivery_attempt"), 2);

  const Json shown = deliveries();
  ASSERT_EQ(shown["outbox"].size(), 2U);
  for (const auto& o : shown["outbox"]) {
    const Json attempts = o.value("attempts_detail", Json::array());
    ASSERT_EQ(attempts.size(), 1U);
    EXPECT_EQ(attempts[0].value("status_code", 0), 200);
    EXPECT_FALSE(attempts[0].value("answered_at", Json()).is_null());
  }
}

TEST_F(BillGoesOutOnceIssue15, ABillWebhooksAnswerOutlivesTheStepTransactionThatWasLost) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([](const ReceivedRequest&, int) { return 200; });
  // send_bill[1]: the webhook's element (the folder's is send_bill[0]).
  lose_first_commit_of({"send_bill[1]"});
  start(insurer, &webhook);
  const auto run_id = upload();
  ASSERT_TRUE(wait_step(run_id, "send_bill", "succeeded"));
  EXPECT_EQ(commits_of("send_bill[1]"), 2) << "the webhook element's first commit was not lost";

  std::set<std::string> bodies;
  for (const auto& r : webhook.requests()) bodies.insert(r.body);
  EXPECT_EQ(bodies.size(), 1U) << "a second, different bill went out";
  EXPECT_EQ(webhook.requests().size(), 1U) << "a bill already answered was sent again";
  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 1);
  EXPECT_EQ(scalar("SELECT string_agg(a.status_code::text || ' ' || (a.answered_at IS NOT NULL), "
                   "',')" +
                   kWebhookAttempts),
            "200 true");
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery WHERE status = 'delivered'"), 2);
}

// Finding (fault suite): an insurance step found its chart's notifications held by another
// attempt and succeeded with nothing delivered; when that attempt was lost, nothing ever sent
// them. A step that finds rows another step is sending waits for them instead. Here a second run
// of the chart meets the first run's attempts while their receivers hold them, then the first
// run's attempts fail, and the rows go out once.
TEST_F(BillGoesOutOnceIssue15,
       AFinalNotificationAnotherStepIsSendingKeepsTheInsuranceStepRetrying) {
  std::atomic<bool> held{false};
  std::atomic<bool> release{false};
  FakeHttpServer insurer([&](const ReceivedRequest& r, int) {
    if (r.header("Idempotency-Key").find(":final:") == std::string::npos || held.exchange(true))
      return 200;
    wait_until([&] { return release.load(); }, kHoldAtMost);
    return 503;
  });
  start(insurer, nullptr);
  const auto first = upload();
  ASSERT_TRUE(wait_until([&] { return held.load(); }, kStepTimeout));
  const auto second = replay();
  // The second run's insurance step sends whatever of the chart is pending, and the final
  // notification is the first run's final_notice's for now.
  const bool retried = wait_kept_retrying(second, "insurance");
  const auto attempts_while_held = count(
      "SELECT count(*) FROM insurer_delivery_attempt a JOIN insurer_outbox o ON "
      "o.id = a.outbox_id WHERE o.kind = 'final'");
  release = true;
  EXPECT_TRUE(retried) << step_row(second, "insurance", "status || ' ' || coalesce(error, '')");
  EXPECT_EQ(attempts_while_held, 1) << "a notification another step held was sent meanwhile";

  for (const auto run_id : {first, second})
    ASSERT_TRUE(wait_step(run_id, "final_notice", "succeeded")) << run_id;
  ASSERT_TRUE(wait_step(second, "insurance", "succeeded"));
  EXPECT_EQ(scalar("SELECT string_agg(a.status_code::text, ',' ORDER BY a.attempt) FROM "
                   "insurer_delivery_attempt a JOIN insurer_outbox o ON o.id = a.outbox_id "
                   "WHERE o.kind = 'final'"),
            "503,200");
  EXPECT_EQ(with_key_part(insurer, ":final:").size(), 2U);
  EXPECT_EQ(with_key_part(insurer, ":claim:").size(), 1U);
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status <> 'delivered'"), 0);
  // No step that could have sent it counted as done before it was delivered.
  EXPECT_EQ(count("SELECT count(*) FROM step_run s, insurer_outbox o WHERE o.kind = 'final' AND "
                  "(s.step_key = 'final_notice' OR (s.step_key = 'insurance' AND s.run_id = " +
                  std::to_string(second) + ")) AND s.finished_at < o.delivered_at"),
            0);
}

TEST_F(BillGoesOutOnceIssue15, ABillAnotherStepIsSendingKeepsTheSendBillStepRetrying) {
  std::atomic<bool> held{false};
  std::atomic<bool> release{false};
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([&](const ReceivedRequest&, int i) {
    if (i > 0) return 200;
    held = true;
    wait_until([&] { return release.load(); }, kHoldAtMost);
    return 503;
  });
  start(insurer, &webhook);
  const auto first = upload();
  ASSERT_TRUE(wait_until([&] { return held.load(); }, kStepTimeout));
  const auto second = replay();
  // The webhook's element: send_bill[1] in both runs (the folder's is send_bill[0]).
  const bool retried = wait_kept_retrying(second, "send_bill[1]");
  const auto attempts_while_held = count("SELECT count(*)" + kWebhookAttempts);
  release = true;
  EXPECT_TRUE(retried) << step_row(second, "send_bill[1]", "status || ' ' || coalesce(error, '')");
  EXPECT_EQ(attempts_while_held, 1) << "a bill another step held was sent meanwhile";

  for (const auto run_id : {first, second})
    ASSERT_TRUE(wait_step(run_id, "send_bill", "succeeded")) << run_id;
  const auto requests = webhook.requests();
  ASSERT_EQ(requests.size(), 2U) << "the held attempt's 503, then the bill once";
  EXPECT_EQ(requests[0].body, requests[1].body);
  EXPECT_EQ(requests[1].header("Idempotency-Key"), std::string("bill:") + kChart + ":webhook");
  EXPECT_EQ(
      scalar("SELECT string_agg(a.status_code::text, ',' ORDER BY a.attempt)" + kWebhookAttempts),
      "503,200");
  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery WHERE status <> 'delivered'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM step_run s, bill_delivery d WHERE d.channel = 'webhook' "
                  "AND s.step_key IN ('send_bill', 'send_bill[1]') "
                  "AND s.finished_at < d.delivered_at"),
            0);
}

// Issue #18 part 3: send_bill fans out over the bill's channels, so a receiver that is down
// retries, and parks, alone: the folder's bill is out meanwhile, and the operator's retry of the
// webhook's element (send_bill[1]) sends the same bill under the same key once it is back.
TEST_F(BillGoesOutOnceIssue15, AReceiverThatStaysDownParksOnlyItsChannel) {
  std::atomic<bool> down{true};
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([&](const ReceivedRequest&, int) { return down ? 503 : 200; });
  start(insurer, &webhook);
  const auto run_id = upload();
  ASSERT_TRUE(wait_until([&] { return step_row(run_id, "send_bill[1]", "attempt >= 2") == "t"; },
                         kStepTimeout))
      << step_row(run_id, "send_bill[1]", "status || ' ' || coalesce(error, '')");
  EXPECT_EQ(step_row(run_id, "send_bill[0]", "status"), "succeeded");
  EXPECT_TRUE(std::filesystem::exists(bill_file()));
  EXPECT_EQ(scalar("SELECT status FROM bill_delivery WHERE channel = 'folder'"), "delivered");
  // The budget (40 attempts over hours) shortened in the database: one more failure parks it.
  scalar("UPDATE step_run SET max_attempts = attempt + 1 WHERE run_id = " + std::to_string(run_id) +
         " AND step_key = 'send_bill[1]' RETURNING 1");
  ASSERT_TRUE(wait_step(run_id, "send_bill[1]", "parked"))
      << step_row(run_id, "send_bill[1]", "status || ' ' || coalesce(error, '')");
  EXPECT_EQ(step_row(run_id, "send_bill", "status"), "pending");
  EXPECT_EQ(scalar("SELECT status FROM bill_delivery WHERE channel = 'webhook'"), "pending");
  const auto refused = webhook.requests().size();

  down = false;
  auto retried =
      call("POST", "/v1/runs/" + std::to_string(run_id) + "/steps/send_bill%5B1%5D/retry");
  ASSERT_EQ(retried.status, 202) << retried.body;
  ASSERT_TRUE(wait_step(run_id, "send_bill", "succeeded"))
      << step_row(run_id, "send_bill[1]", "status || ' ' || coalesce(error, '')");
  const auto requests = webhook.requests();
  ASSERT_EQ(requests.size(), refused + 1) << "the bill went out once the receiver was back";
  std::set<std::string> bodies;
  for (const auto& r : requests) {
    bodies.insert(r.body);
    EXPECT_EQ(r.header("Idempotency-Key"), std::string("bill:") + kChart + ":webhook");
  }
  EXPECT_EQ(bodies.size(), 1U) << "resends differ from the first bill";
  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery WHERE status = 'delivered'"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery_attempt a JOIN bill_delivery d ON "
                  "d.id = a.delivery_id WHERE d.channel = 'folder'"),
            1);
}

// Issue #18 part 4: the bill webhook joins the run's trace, as the insurer's calls do: its
// traceparent names the trace the upload came with and the span of the attempt of send_bill's
// webhook element.
TEST_F(BillGoesOutOnceIssue15, TheBillWebhookCarriesTheRunsTraceparent) {
  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([](const ReceivedRequest&, int) { return 200; });
  start(insurer, &webhook);
  auto r = app_->call("PUT", std::string("/v1/charts/") + kChart, admin_,
                      data::read_file(data::charts_dir() / kChartFile),
                      {{"Content-Type", "application/fhir+json"},
                       {"traceparent", "00-" + trace_id + "-00f067aa0ba902b7-01"}});
  ASSERT_EQ(r.status, 202) << r.body;
  const auto run_id = r.json().at("runs")[0].get<std::int64_t>();
  approve_review(run_id);
  ASSERT_TRUE(wait_step(run_id, "send_bill", "succeeded"))
      << step_row(run_id, "send_bill", "error");
  const auto requests = webhook.requests();
  ASSERT_EQ(requests.size(), 1U);
  const auto sent = core::parse_traceparent(requests[0].header("traceparent"));
  ASSERT_TRUE(sent.has_value()) << "no traceparent: " << requests[0].header("traceparent");
  EXPECT_EQ(sent->trace_id, trace_id);
  EXPECT_EQ(sent->parent_span_id, core::step_span_id(trace_id, run_id, "send_bill[1]", 1));
}

}  // namespace
}  // namespace chartflow::handlers
