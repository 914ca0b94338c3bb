// Debounce per key (issue #17 item 4): events of a trigger with `debounce` that share a key value
// within the window start ONE run, with the last event's body; the window restarts with each
// event, and max_wait bounds the delay from the first one. Every event is stored when it
// arrives, and the pending start is a row, so a restart mid-window still starts the run; several
// engines on one database start it once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/api_routes.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "runtime/builtin_handlers.hpp"
#include "runtime/engine.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kWindow = 600ms;
// The run of a key starts within the window after its last event, plus the dispatcher's poll
// interval (the harness's 200 ms, set below), plus this for a loaded two-core machine.
constexpr auto kMargin = 5s;

std::string review_yaml(const std::string& window, const std::string& max_wait) {
  return "name: review\n"
         "on:\n"
         "  - event: chart.saved\n"
         "    debounce: { key: /event/chart_id, window: " +
         window + ", max_wait: " + max_wait +
         " }\n"
         "steps:\n"
         "  a: { handler: noop }\n";
}

class DebounceTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    harness_ = std::make_unique<EngineHarness>(
        dsn(), std::vector<std::string>{review_yaml("600ms", "30s")});
  }
  void TearDown() override {
    others_.clear();
    harness_.reset();
    PgTest::TearDown();
  }

  // Another chartflow process, as far as the database can tell: its own engine on the same
  // schema, with the workflows as stored.
  runtime::Engine& another_engine(runtime::EngineHooks hooks = {}) {
    auto handlers = std::make_shared<HandlerRegistry>();
    runtime::register_builtin_handlers(*handlers);
    auto registry = std::make_shared<runtime::WorkflowRegistry>();
    registry->load_latest(harness_->store());
    runtime::EngineSettings settings;
    settings.dsn = dsn();
    settings.workers = 2;
    settings.poll_interval = 200ms;
    others_.push_back(
        std::make_unique<runtime::Engine>(settings, handlers, registry, std::move(hooks)));
    return *others_.back();
  }

  IngestResult save(runtime::Engine& engine, const Json& body) {
    store::EventInput ev;
    ev.type = "chart.saved";
    ev.body = body;
    return engine.ingest(ev);
  }

  int runs() { return std::stoi(scalar("SELECT count(*) FROM workflow_run")); }
  // The runs' event bodies, in run order.
  std::vector<Json> run_events() {
    std::vector<Json> out;
    const auto list = harness_->store().list_runs({});
    for (auto it = list.at("runs").rbegin(); it != list.at("runs").rend(); ++it) {
      const auto body = harness_->store().event_body(it->value("event_id", std::int64_t{0}));
      out.push_back(body ? *body : Json());
    }
    return out;
  }
  Json review_listing() {
    for (const auto& w : harness_->engine().list_workflows())
      if (w.value("name", "") == "review") return w;
    return Json();
  }

  metrics::Metrics metrics_;  // outlives the engines whose hooks report to it
  std::unique_ptr<EngineHarness> harness_;
  std::vector<std::unique_ptr<runtime::Engine>> others_;
};

TEST_F(DebounceTest, FiveSavesWithinTheWindowStartOneRunWithTheLastSave) {
  harness_->start();
  for (int rev = 1; rev <= 5; ++rev) {
    const auto r = save(harness_->engine(), {{"chart_id", "c-1"}, {"rev", rev}});
    EXPECT_FALSE(r.duplicate);
    EXPECT_THAT(r.run_ids, ::testing::IsEmpty()) << "rev " << rev << " started a run at once";
  }
  // Every save is stored as it arrives, though none has started a run yet.
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'chart.saved'"), "5");
  EXPECT_EQ(runs(), 0);
  const Json listed = review_listing();
  EXPECT_EQ(listed.value("debounce_pending", -1), 1) << listed.dump();
  ASSERT_TRUE(listed.contains("debounce")) << listed.dump();
  EXPECT_EQ(listed.at("debounce"), (Json::array({{{"event", "chart.saved"},
                                                  {"key", "/event/chart_id"},
                                                  {"window_ms", 600},
                                                  {"max_wait_ms", 30000}}})));

  ASSERT_TRUE(wait_until([&] { return runs() > 0; }, kWindow + kMargin));
  const auto events = run_events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].value("rev", 0), 5) << events[0].dump();
  const auto id = harness_->store().list_runs({}).at("runs").at(0).value("id", std::int64_t{0});
  ASSERT_TRUE(harness_->wait_status(id, "succeeded")) << harness_->run(id).dump();
  // The run says how many saves it stands for.
  bool told = false;
  const Json run = harness_->run(id);
  for (const auto& h : run.at("history"))
    if (h.value("type", "") == "scheduled") told = h.at("detail").value("debounced_events", 0) == 5;
  EXPECT_TRUE(told) << run.dump();
  EXPECT_EQ(review_listing().value("debounce_pending", -1), 0);
  EXPECT_EQ(runs(), 1);
}

TEST_F(DebounceTest, EachKeyStartsItsOwnRunOnceWhateverTheNumberOfEngines) {
  // Two more engines on the database: each runs the timer, and each pending start runs once.
  auto& second = another_engine();
  auto& third = another_engine();
  harness_->start();
  second.start();
  third.start();
  save(harness_->engine(), {{"chart_id", "c-1"}, {"rev", 1}});
  save(second, {{"chart_id", "c-2"}, {"rev", 1}});
  save(third, {{"chart_id", "c-1"}, {"rev", 2}});
  save(harness_->engine(), {{"chart_id", "c-2"}, {"rev", 2}});
  save(second, {{"chart_id", 3}, {"rev", 1}});  // not a string: its JSON text is the key
  // Without the key the event cannot be coalesced: it starts its run at once.
  const auto keyless = save(third, {{"rev", 9}});
  EXPECT_EQ(keyless.run_ids.size(), 1U);

  ASSERT_TRUE(wait_until([&] { return runs() >= 4; }, kWindow + kMargin));
  EXPECT_TRUE(wait_until([&] { return review_listing().value("debounce_pending", -1) == 0; }));
  auto events = run_events();
  ASSERT_EQ(events.size(), 4U);
  std::vector<std::string> seen;
  seen.reserve(events.size());
  for (const auto& e : events)
    seen.push_back(e.value("chart_id", Json("-")).dump() + "@" + std::to_string(e.value("rev", 0)));
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("\"c-1\"@2", "\"c-2\"@2", "3@1", "\"-\"@9"));
  EXPECT_EQ(runs(), 4);
}

// Batches (POST /v1/events) upsert their pending starts in one transaction each. Two batches of
// the same keys in opposite orders would each lock the other's next row and deadlock, one of
// them failing; in a fixed order one waits for the other and both go in.
TEST_F(DebounceTest, ConcurrentBatchesOfTheSameKeysInOppositeOrdersBothGoIn) {
  harness_.reset();
  harness_ =
      std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{review_yaml("1h", "2h")});
  auto& second = another_engine();
  constexpr int kKeys = 60, kRounds = 8;
  std::vector<store::EventInput> forward, backward;
  for (int k = 0; k < kKeys; ++k) {
    store::EventInput ev;
    ev.type = "chart.saved";
    ev.body = {{"chart_id", "c-" + std::to_string(k)}, {"rev", k}};
    forward.push_back(ev);
  }
  backward.assign(forward.rbegin(), forward.rend());
  int failed = 0;
  std::string failure;
  std::mutex mu;
  const auto send = [&](runtime::Engine& engine, const std::vector<store::EventInput>& batch) {
    try {
      engine.ingest_batch(batch);
    } catch (const std::exception& e) {
      std::lock_guard lock(mu);
      ++failed;
      failure = e.what();
    }
  };
  for (int round = 0; round < kRounds; ++round) {
    std::thread a([&] { send(harness_->engine(), forward); });
    std::thread b([&] { send(second, backward); });
    a.join();
    b.join();
  }
  EXPECT_EQ(failed, 0) << failure;
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), std::to_string(2 * kKeys * kRounds));
  EXPECT_EQ(scalar("SELECT count(*) FROM debounce_pending"), std::to_string(kKeys));
  EXPECT_EQ(scalar("SELECT sum(events) FROM debounce_pending"),
            std::to_string(2 * kKeys * kRounds));
}

// A start whose time has come is due: an event arriving before the dispatcher has got to it joins
// it (the run takes the later event) but does not push it back by another window.
TEST_F(DebounceTest, ALateEventJoinsADueStartWithoutPostponingIt) {
  save(harness_->engine(), {{"chart_id", "c-1"}, {"rev", 1}});
  scalar("UPDATE debounce_pending SET due_at = now() - interval '1 second'");
  save(harness_->engine(), {{"chart_id", "c-1"}, {"rev", 2}});
  EXPECT_EQ(scalar("SELECT events || ' ' || (due_at <= now()) FROM debounce_pending"), "2 true");
  harness_->start();
  ASSERT_TRUE(wait_until([&] { return runs() > 0; }, kMargin));
  const auto events = run_events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].value("rev", 0), 2);
}

TEST_F(DebounceTest, ContinuousSavesStillStartARunByMaxWait) {
  harness_.reset();
  harness_ =
      std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{review_yaml("800ms", "2s")});
  harness_->start();
  constexpr auto kMaxWait = 2s;
  const auto first = std::chrono::steady_clock::now();
  int sent = 0;
  // A chart saved every 100 ms never leaves the 800 ms window quiet; only max_wait ends the
  // wait. (The sleep paces the saves; it synchronises nothing.)
  while (runs() == 0 && std::chrono::steady_clock::now() - first < kMaxWait + kMargin) {
    save(harness_->engine(), {{"chart_id", "c-1"}, {"rev", ++sent}});
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(runs(), 1) << "no run within max_wait of the first save, after " << sent << " saves";
  // The run stands for the saves before it (the latest of them), many coalesced.
  const auto events = run_events();
  ASSERT_EQ(events.size(), 1U);
  const int coalesced = events[0].value("rev", 0);
  EXPECT_GE(coalesced, 2);
  EXPECT_LE(coalesced, sent);
  // The saves were continuous, as the database saw them: no gap as long as the window.
  EXPECT_EQ(scalar("SELECT coalesce(max(gap), 0) < 800 FROM (SELECT extract(epoch FROM "
                   "created_at - lag(created_at) OVER (ORDER BY id)) * 1000 AS gap FROM event) g"),
            "t");
  // Started by max_wait after the first save, not before (give or take the poll).
  EXPECT_EQ(scalar("SELECT (SELECT min(created_at) FROM workflow_run) - (SELECT min(created_at) "
                   "FROM event) >= interval '1900 milliseconds'"),
            "t");
  // A save after the run starts a new window of its own, and a run of its own.
  save(harness_->engine(), {{"chart_id", "c-1"}, {"rev", ++sent}});
  ASSERT_TRUE(wait_until([&] { return runs() == 2; }, 800ms + kMargin));
  EXPECT_EQ(run_events().back().value("rev", 0), sent);
  EXPECT_EQ(runs(), 2);
}

TEST_F(DebounceTest, ARestartInTheMiddleOfTheWindowStillStartsTheRun) {
  // Saved through an engine that stops before the window ends (never started: nothing of it
  // fires anything), then a new engine on the same database.
  for (int rev = 1; rev <= 3; ++rev) save(harness_->engine(), {{"chart_id", "c-1"}, {"rev", rev}});
  harness_->stop();
  EXPECT_EQ(runs(), 0);
  // The new process counts what it coalesced, as serve wires its metrics.
  auto& metrics = metrics_;
  for (const auto& wf : harness_->engine().workflows().latest())
    metrics.declare_workflow(wf->workflow);
  const std::string series = "chartflow_events_coalesced_total{workflow=\"review\"} ";
  EXPECT_THAT(metrics.serialize(), ::testing::HasSubstr(series + "0"));
  runtime::EngineHooks hooks;
  hooks.debounced_run_started = [&metrics](const std::string& wf, int events) {
    metrics.events_coalesced(wf, events - 1);
  };
  auto& restarted = another_engine(hooks);
  restarted.start();
  ASSERT_TRUE(wait_until([&] { return runs() > 0; }, kWindow + kMargin));
  const auto events = run_events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].value("rev", 0), 3);
  EXPECT_TRUE(wait_until([&] { return scalar("SELECT status FROM workflow_run") == "succeeded"; }));
  EXPECT_THAT(metrics.serialize(), ::testing::HasSubstr(series + "2"));
}

TEST_F(DebounceTest, TheApiSaysAnEventWasDebouncedAndListsPendingStarts) {
  metrics::Metrics metrics;
  http::Router router;
  http::add_engine_routes(router, harness_->engine(), metrics);
  http::ServerSettings ss;
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.threads = 1;
  http::Server server(ss, router);
  server.start();
  const auto token = create_token(dsn(), "operator");
  auto call = [&](const std::string& method, const std::string& target, const std::string& body) {
    return request(method, "127.0.0.1", server.port(), target, body, with_bearer(token));
  };
  // The engine is not started: the start stays pending, as it would for the whole window.
  auto posted = call("POST", "/v1/events/chart.saved", R"({"chart_id": "c-9"})");
  ASSERT_EQ(posted.status, 202) << posted.body;
  EXPECT_EQ(posted.json().at("runs"), Json::array()) << posted.body;
  EXPECT_EQ(posted.json().value("debounced", Json()), Json::array({"review"})) << posted.body;
  auto listed = call("GET", "/v1/workflows", "");
  ASSERT_EQ(listed.status, 200) << listed.body;
  const Json workflows = listed.json().at("workflows");
  ASSERT_EQ(workflows.size(), 1U) << listed.body;
  const Json& review = workflows.at(0);
  EXPECT_EQ(review.value("name", ""), "review");
  EXPECT_EQ(review.value("debounce_pending", -1), 1) << listed.body;
  EXPECT_EQ(review.at("debounce").at(0).value("key", ""), "/event/chart_id") << listed.body;
  server.stop();
}

}  // namespace
}  // namespace chartflow::testing
