// Issue #15 item 1: a released patient's bill goes out once, byte for byte the same under its one
// key, however often a receiver fails or a step's transaction is lost after the receiver answered;
// every attempt at an outside call (bill channel or insurer) is in the database, started and
// answered. The steps run through a test StepContext whose transaction commits like the engine's
// (Retry rolls back) or is rolled back as a SIGKILL would; its journal commits at once, as the
// engine's does. The last test runs chart-update.yaml through the engine.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include "handlers/chart_api/chart_api.hpp"
#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/chart_module.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "handlers/testing/step_context.hpp"
#include "store/store.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::handlers {
namespace {

using chartflow::testing::FakeHttpServer;
using chartflow::testing::ReceivedRequest;

constexpr const char* kChart = "lemuel";  // released, one payor, two ledger entries
const char* const kChartFile =
    "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";

struct StepSpec {
  std::string step;
  std::string handler;
  Json input;
};

// The steps of chart-update.yaml that bill a released chart, in its order. A handler this build
// does not register is left out.
const std::vector<StepSpec>& bill_steps() {
  static const std::vector<StepSpec> kSteps = {{"billing", "billing", Json::object()},
                                               {"insurance", "insurance", Json::object()},
                                               {"discharge", "discharge", Json::object()},
                                               {"final_notice", "insurance", {{"kind", "final"}}},
                                               {"send_bill", "bill_send", Json::object()}};
  return kSteps;
}

struct Crash {};

class BillGoesOutOnceIssue15 : public chartflow::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    store_ = std::make_unique<store::Store>(dsn());
    journal_ = std::make_unique<store::Store>(dsn());
    bill_dir_ = std::filesystem::temp_directory_path() /
                ("chartflow-bill-once-" + schema() + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(bill_dir_);
  }
  void TearDown() override {
    std::filesystem::remove_all(bill_dir_);
    journal_.reset();
    store_.reset();
    PgTest::TearDown();
  }

  std::shared_ptr<HandlerRegistry> registry(const std::string& insurer_url,
                                            const std::string& webhook_url) {
    auto r = std::make_shared<HandlerRegistry>();
    ChartHandlerOptions options;
    options.insurers = Json{{"timeout", "2s"}, {"payors", {{"default", {{"url", insurer_url}}}}}};
    Json channels = {{{"name", "folder"}, {"type", "folder"}, {"dir", bill_dir_.string()}}};
    if (!webhook_url.empty())
      channels.push_back({{"name", "webhook"}, {"type", "webhook"}, {"url", webhook_url}});
    options.bill_delivery = Json{{"channels", channels}};
    register_chart_handlers(*r, testing::workflows_dir(), options);
    return r;
  }

  Json upload() {
    const std::string raw = testing::read_file(testing::charts_dir() / kChartFile);
    Json bundle = Json::parse(raw);
    StoredRevision stored;
    store_->with_sql([&](Sql& sql) { stored = store_revision(sql, kChart, raw, bundle, "t"); });
    return chart_event_body(bundle, kChart, stored.revision);
  }

  // One attempt: committed unless Retry, or rolled back whatever the outcome when `crash` says the
  // process dies right after it (the engine never learns of it and runs the step again). True
  // when the step is done: committed and not Retry.
  bool attempt(Handler& handler, const StepSpec& spec, const Json& event, int n,
               const std::function<bool()>& crash) {
    bool done = false;
    try {
      store_->with_sql([&](Sql& sql) {
        testing::TestStepContext ctx(
            sql, [this](const std::function<void(Sql&)>& fn) { journal_->with_sql(fn); }, 1,
            spec.step, event, spec.input, nullptr, n);
        const StepOutcome outcome = handler.run(ctx);
        const bool dies = crash && crash();
        if (dies || std::holds_alternative<Retry>(outcome)) throw Crash{};
        done = true;
      });
    } catch (const Crash&) {
    }
    return done;
  }

  // Runs bill_steps() in order, each retried like the engine (at most 8 attempts); `crash` is
  // asked after every attempt, `after` sees every attempt once its transaction has ended.
  void close_bill(HandlerRegistry& handlers, const Json& event,
                  const std::function<bool()>& crash = {},
                  const std::function<void()>& after = {}) {
    for (const auto& spec : bill_steps()) {
      Handler* handler = handlers.find(spec.handler);
      if (handler == nullptr) continue;
      bool done = false;
      for (int n = 1; n <= 8 && !done; ++n) {
        done = attempt(*handler, spec, event, n, crash);
        if (after) after();
      }
      EXPECT_TRUE(done) << spec.step << " did not complete";
    }
  }

  std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }

  Json deliveries() {
    Json out;
    store_->with_sql([&](Sql& sql) { out = list_deliveries(sql, kChart); });
    return out;
  }

  std::filesystem::path bill_file() const {
    return bill_dir_ / (std::string(kChart) + "-invoice.txt");
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::Store> journal_;  // the journal's own connection
  std::filesystem::path bill_dir_;
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

TEST_F(BillGoesOutOnceIssue15, AWebhookFailingFourTimesGetsOneBillByteIdenticalUnderOneKey) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([](const ReceivedRequest&, int i) { return i < 4 ? 500 : 200; });
  auto handlers = registry(insurer.url("/claims"), webhook.url("/bills"));
  const Json event = upload();
  ASSERT_EQ(event["released"], true);

  // A hard link to the first bill file written keeps its inode: a later rewrite (a new file
  // renamed into place) is then told apart even where inode numbers are reused.
  const auto witness = bill_dir_ / "first-bill-witness";
  close_bill(*handlers, event, {}, [&] {
    if (std::filesystem::exists(bill_file()) && !std::filesystem::exists(witness))
      std::filesystem::create_hard_link(bill_file(), witness);
  });

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

  ASSERT_TRUE(std::filesystem::exists(bill_file()));
  EXPECT_TRUE(std::filesystem::equivalent(bill_file(), witness)) << "the bill file was rewritten";
  const std::string file = testing::read_file(bill_file());
  EXPECT_EQ(file, bill_text);
  for (const auto& t : issued_times(file)) issued.insert(t);
  EXPECT_EQ(issued.size(), 1U) << "one Issued: time in everything sent";

  // The insurer's final notification: queued once, sent once.
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE kind = 'final'"), 1);
  EXPECT_EQ(scalar("SELECT status FROM insurer_outbox WHERE kind = 'final'"), "delivered");
  EXPECT_EQ(with_key_part(insurer, ":final:").size(), 1U);

  // Every attempt is on record, answered.
  EXPECT_EQ(scalar("SELECT string_agg(a.status_code::text, ',' ORDER BY a.attempt) FROM "
                   "bill_delivery_attempt a JOIN bill_delivery d ON d.id = a.delivery_id "
                   "WHERE d.channel = 'webhook'"),
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
  auto handlers = registry(insurer.url("/claims"), "");
  const Json event = upload();

  // The process dies right after the attempt in which an insurer first answered for a key.
  std::set<std::string> answered;
  std::map<std::string, std::string> status_after_crash;
  auto crash = [&] {
    bool dies = false;
    for (const auto& r : insurer.requests())
      dies = answered.insert(r.header("Idempotency-Key")).second || dies;
    return dies;
  };
  auto after = [&] {
    for (const auto& key : answered) {
      if (status_after_crash.count(key) != 0) continue;
      status_after_crash[key] = scalar(
          "SELECT o.status || ' ' || coalesce(a.status_code::text, '-') FROM "
          "insurer_outbox o LEFT JOIN insurer_delivery_attempt a ON a.outbox_id = o.id "
          "WHERE o.idempotency_key = '" +
          key + "' ORDER BY a.id LIMIT 1");
    }
  };
  close_bill(*handlers, event, crash, after);

  ASSERT_EQ(answered.size(), 2U) << "the claim and the final notification";
  for (const auto& [key, status] : status_after_crash)
    EXPECT_EQ(status, "delivered 200") << key << ": the answer was lost with the step";
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
  auto handlers = registry(insurer.url("/claims"), webhook.url("/bills"));
  const Json event = upload();

  bool crashed = false;
  std::string after_crash;
  auto crash = [&] { return !crashed && !webhook.requests().empty() && (crashed = true); };
  auto after = [&] {
    if (!crashed || !after_crash.empty()) return;
    // to_jsonb: the query also runs on the schema from before the delivery journal.
    after_crash = scalar(
        "SELECT coalesce(to_jsonb(d) ->> 'status', 'no status') FROM bill_delivery d "
        "WHERE d.channel = 'webhook'");
    if (after_crash.empty()) after_crash = "no delivery row";
  };
  close_bill(*handlers, event, crash, after);

  ASSERT_TRUE(crashed);
  EXPECT_EQ(after_crash, "delivered") << "the webhook's answer was lost with the step";
  std::set<std::string> bodies;
  for (const auto& r : webhook.requests()) bodies.insert(r.body);
  EXPECT_EQ(bodies.size(), 1U) << "a second, different bill went out";
  EXPECT_EQ(webhook.requests().size(), 1U) << "a bill already answered was sent again";
  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 1);
  EXPECT_EQ(scalar("SELECT string_agg(a.status_code::text || ' ' || (a.answered_at IS NOT NULL), "
                   "',') FROM bill_delivery_attempt a JOIN bill_delivery d ON "
                   "d.id = a.delivery_id WHERE d.channel = 'webhook'"),
            "200 true");
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery WHERE status = 'delivered'"), 2);
}

TEST_F(BillGoesOutOnceIssue15, TheChartWorkflowSendsOneBillThroughAFlakyWebhook) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([](const ReceivedRequest&, int i) { return i < 4 ? 500 : 200; });
  auto handlers = registry(insurer.url("/claims"), webhook.url("/bills"));
  const std::string workflow = testing::read_file(testing::workflows_dir() / "chart-update.yaml");
  chartflow::testing::EngineHarness h(dsn(), {workflow}, handlers);
  h.start();

  const Json event = upload();
  const auto run_id = h.start_run("chart.uploaded", event);
  ASSERT_TRUE(chartflow::testing::wait_until(
      [&] { return h.step(run_id, "review").value("status", "") == "waiting"; }));
  Json reviews;
  h.store().with_sql([&](Sql& sql) { reviews = list_reviews(sql, "pending", std::nullopt, 10); });
  ASSERT_EQ(reviews["reviews"].size(), 1U);
  DecisionResult decided;
  h.store().with_sql([&](Sql& sql) {
    decided = decide_review(sql, reviews["reviews"][0]["id"].get<std::int64_t>(), "approve",
                            std::nullopt, "dr-580");
  });
  ASSERT_EQ(decided.status, DecisionResult::Status::kOk);
  std::string message;
  ASSERT_EQ(h.store().signal(decided.run_id, "review", decided.signal_payload, &message),
            store::Store::CommandResult::kOk)
      << message;
  ASSERT_TRUE(h.wait_status(run_id, "succeeded", std::chrono::seconds(60))) << h.run(run_id).dump();

  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 1);
  const auto requests = webhook.requests();
  ASSERT_EQ(requests.size(), 5U);
  std::set<std::string> bodies;
  std::set<std::string> keys;
  for (const auto& r : requests) {
    bodies.insert(r.body);
    keys.insert(r.header("Idempotency-Key"));
  }
  EXPECT_EQ(bodies.size(), 1U) << "resends differ from the first bill";
  EXPECT_EQ(keys, std::set<std::string>{std::string("bill:") + kChart + ":webhook"});
  EXPECT_EQ(std::to_string(Json::parse(requests.front().body).value("invoice_id", 0)),
            scalar("SELECT id FROM invoice"));
  EXPECT_EQ(with_key_part(insurer, ":final:").size(), 1U);
  EXPECT_EQ(testing::read_file(bill_file()), scalar("SELECT bill_text FROM invoice"));
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery_attempt a JOIN bill_delivery d ON "
                  "d.id = a.delivery_id WHERE d.channel = 'webhook'"),
            5);
}

// Finding (fault suite): an insurance step found its chart's notifications held by another
// attempt and succeeded with nothing delivered; when that attempt was lost, nothing ever sent
// them. A step that finds rows another step is sending waits for them instead.
TEST_F(BillGoesOutOnceIssue15, RowsAnotherStepIsSendingKeepTheStepRetrying) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  FakeHttpServer webhook([](const ReceivedRequest&, int) { return 200; });
  auto handlers = registry(insurer.url("/claims"), webhook.url("/bills"));
  const Json event = upload();
  const auto& steps = bill_steps();
  for (std::size_t i = 0; i < 3; ++i)  // billing, insurance, discharge
    ASSERT_TRUE(attempt(*handlers->find(steps[i].handler), steps[i], event, 1, {}))
        << steps[i].step;
  // What discharge queued is being sent by a step of another run of this chart.
  scalar(
      "UPDATE insurer_outbox SET sending_by = 'run:2:final_notice', sending_until = now() + "
      "interval '1 hour' WHERE status = 'pending'");
  scalar(
      "UPDATE bill_delivery SET sending_by = 'run:2:send_bill', sending_until = now() + "
      "interval '1 hour' WHERE status = 'pending'");
  const std::size_t before = insurer.requests().size();
  for (std::size_t i = 3; i < steps.size(); ++i)
    EXPECT_FALSE(attempt(*handlers->find(steps[i].handler), steps[i], event, 1, {}))
        << steps[i].step << " succeeded while another step held its rows";
  EXPECT_EQ(insurer.requests().size(), before);
  EXPECT_EQ(webhook.requests().size(), 0U);

  // That step's lease ran out (its run was failed by an operator): these steps send them.
  scalar("UPDATE insurer_outbox SET sending_until = now() - interval '1 second'");
  scalar("UPDATE bill_delivery SET sending_until = now() - interval '1 second'");
  for (std::size_t i = 3; i < steps.size(); ++i)
    EXPECT_TRUE(attempt(*handlers->find(steps[i].handler), steps[i], event, 2, {}))
        << steps[i].step;
  EXPECT_EQ(with_key_part(insurer, ":final:").size(), 1U);
  EXPECT_EQ(webhook.requests().size(), 1U);
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status <> 'delivered'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery WHERE status <> 'delivered'"), 0);
}

}  // namespace
}  // namespace chartflow::handlers
