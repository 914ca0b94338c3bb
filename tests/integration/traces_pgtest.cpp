// Traces (issue #18 part 4): an event sent with a W3C traceparent makes its run a trace whose
// spans reach an OTLP/HTTP collector (here a fake one, a real HTTP server in the test): the
// run's root span under the caller's span, one span per step attempt under it, ids only in
// attributes; and a collector that never answers does not slow a step down.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

#include "runtime/trace_export.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/served_engine.hpp"

namespace chartflow::testing {
namespace {

constexpr const char* kTraceId = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kCallerSpan = "b7ad6b7169203331";
// In the event's body only: no span may carry it.
constexpr const char* kBodyMarker = "PATIENT-NOTE-5f1c";

const std::string kTraced = R"(
name: traced
on: [{ event: demo.traced }]
steps:
  first: { handler: noop }
  flaky: { handler: flaky_once, needs: [first], retry: { max_attempts: 3, initial: 10ms, jitter: 0 } }
)";

// Fails its first attempt of each run, and remembers the traceparent each attempt was given.
class FlakyOnce : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    {
      std::lock_guard lock(mu_);
      seen_.push_back(ctx.traceparent());
    }
    if (ctx.attempt() == 1) return Retry{"first attempt fails", Millis(0)};
    return Completed{};
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> seen_;
};

// Its first attempt of each run holds until the test releases it (bounded), then gives up the
// attempt; later attempts complete. What ends the held attempt is the test's doing.
class HeldOnce : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override {
    if (ctx.attempt() > 1) return Completed{};
    std::unique_lock lock(mu_);
    held_ = true;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return released_; });
    return Retry{"released", Millis(0)};
  }
  bool wait_held() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return held_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  ~HeldOnce() override { release(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  bool released_ = false;
};

// Every span the collector received, as OTLP/JSON span objects.
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

std::optional<Json> attribute(const Json& span, const std::string& key) {
  for (const auto& a : span.value("attributes", Json::array()))
    if (a.at("key") == key) return a.at("value");
  return std::nullopt;
}

class TracesTest : public PgTest {
 protected:
  void serve(const std::string& endpoint, Millis export_timeout,
             const std::vector<std::string>& workflows = {kTraced}) {
    auto handlers = std::make_shared<HandlerRegistry>();
    handlers->add("flaky_once", flaky_);
    handlers->add("held_once", held_);
    runtime::EngineSettings harness_settings;
    harness_settings.workers = 0;
    harness_ = std::make_unique<EngineHarness>(dsn(), workflows, handlers, harness_settings);
    operator_ = create_token(dsn(), "operator");
    runtime::TraceExportSettings traces;
    traces.endpoint = endpoint;
    traces.instance = "traces-test";
    traces.flush_interval = Millis(50);
    traces.timeout = export_timeout;
    exporter_ = std::make_shared<runtime::TraceExporter>(traces);
    runtime::EngineSettings settings;
    settings.workers = 2;
    settings.poll_interval = Millis(100);
    settings.traces = exporter_;
    served_ = std::make_unique<ServedEngine>(dsn(), *harness_, settings);
  }

  // POSTs a demo.traced event; returns its run's id.
  std::int64_t send_event(const std::map<std::string, std::string>& extra = {}) {
    auto headers = with_bearer(operator_, extra);
    const auto r = request("POST", "127.0.0.1", static_cast<unsigned short>(served_->port()),
                           "/v1/events/demo.traced",
                           Json{{"note", kBodyMarker}, {"chart", "c-1"}}.dump(), headers);
    EXPECT_EQ(r.status, 202) << r.body;
    const auto runs = r.json().value("runs", Json::array());
    EXPECT_EQ(runs.size(), 1U) << r.body;
    return runs.empty() ? 0 : runs[0].get<std::int64_t>();
  }

  // POSTs an event of `type` with `body` and the test's traceparent; returns its run's id.
  std::int64_t send_traced(const std::string& type, const Json& body) {
    const auto r = request(
        "POST", "127.0.0.1", static_cast<unsigned short>(served_->port()), "/v1/events/" + type,
        body.dump(),
        with_bearer(operator_,
                    {{"traceparent", std::string("00-") + kTraceId + "-" + kCallerSpan + "-01"}}));
    EXPECT_EQ(r.status, 202) << r.body;
    const auto runs = r.json().value("runs", Json::array());
    EXPECT_EQ(runs.size(), 1U) << r.body;
    return runs.empty() ? 0 : runs[0].get<std::int64_t>();
  }

  std::shared_ptr<FlakyOnce> flaky_ = std::make_shared<FlakyOnce>();
  std::shared_ptr<HeldOnce> held_ = std::make_shared<HeldOnce>();
  std::unique_ptr<EngineHarness> harness_;
  std::shared_ptr<runtime::TraceExporter> exporter_;
  std::unique_ptr<ServedEngine> served_;
  std::string operator_;
};

TEST_F(TracesTest, ARunIsATraceUnderTheCallersSpan) {
  FakeHttpServer collector([](const ReceivedRequest&, int) { return 200; });
  serve(collector.url(""), Millis(5'000));
  const auto run =
      send_event({{"traceparent", std::string("00-") + kTraceId + "-" + kCallerSpan + "-01"}});
  ASSERT_GT(run, 0);
  ASSERT_TRUE(harness_->wait_status(run, "succeeded"));
  const std::string run_id = std::to_string(run);
  auto of_run = [&] {
    std::vector<Json> out;
    for (auto& s : received_spans(collector))
      if (auto id = attribute(s, "chartflow.run_id"); id && id->value("intValue", "") == run_id)
        out.push_back(s);
    return out;
  };
  // The root span is recorded when the run ends, the last of the four.
  ASSERT_TRUE(wait_until([&] { return of_run().size() >= 4; })) << of_run().size();

  for (const auto& req : collector.requests()) {
    EXPECT_EQ(req.head.rfind("POST /v1/traces ", 0), 0U) << req.head;
    EXPECT_NE(req.header("Content-Type").find("application/json"), std::string::npos);
    // Nothing from the event's body, anywhere in what left for the collector.
    EXPECT_EQ(req.body.find(kBodyMarker), std::string::npos);
    EXPECT_EQ(req.body.find("c-1"), std::string::npos);
  }
  const auto spans = of_run();
  ASSERT_EQ(spans.size(), 4U);  // the run, first, flaky's two attempts
  const Json* root = nullptr;
  for (const auto& s : spans) {
    EXPECT_EQ(s.at("traceId"), kTraceId);
    if (s.at("name") == "run traced") root = &s;
  }
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->at("parentSpanId"), kCallerSpan);
  EXPECT_EQ(attribute(*root, "chartflow.status")->at("stringValue"), "succeeded");
  std::map<std::string, std::vector<int>> attempts;  // step -> attempts seen
  std::set<std::string> span_ids{root->at("spanId").get<std::string>()};
  for (const auto& s : spans) {
    if (&s == root) continue;
    EXPECT_EQ(s.at("parentSpanId"), root->at("spanId")) << s.dump();
    span_ids.insert(s.at("spanId").get<std::string>());
    const std::string step = attribute(s, "chartflow.step")->at("stringValue");
    attempts[step].push_back(
        std::stoi(attribute(s, "chartflow.attempt")->at("intValue").get<std::string>()));
    EXPECT_EQ(s.at("name"), "step " + step);
    EXPECT_TRUE(attribute(s, "chartflow.queue_wait_ms").has_value()) << s.dump();
    EXPECT_TRUE(attribute(s, "chartflow.handler_ms").has_value()) << s.dump();
    // Start and end as the collector reads them: decimal nanoseconds, in order.
    EXPECT_LE(std::stoll(s.at("startTimeUnixNano").get<std::string>()),
              std::stoll(s.at("endTimeUnixNano").get<std::string>()));
  }
  EXPECT_EQ(span_ids.size(), 4U);  // every span its own id
  EXPECT_EQ(attempts["first"], std::vector<int>{1});
  std::sort(attempts["flaky"].begin(), attempts["flaky"].end());
  EXPECT_EQ(attempts["flaky"], (std::vector<int>{1, 2}));
  for (const auto& s : spans)
    for (const auto& a : s.value("attributes", Json::array()))
      EXPECT_EQ(a.dump().find(kBodyMarker), std::string::npos) << a.dump();

  // The handler's outbound traceparent names the run's trace and its own attempt's span.
  const auto seen = flaky_->seen();
  ASSERT_EQ(seen.size(), 2U);
  for (const auto& tp : seen) {
    const auto ctx = core::parse_traceparent(tp);
    ASSERT_TRUE(ctx.has_value()) << tp;
    EXPECT_EQ(ctx->trace_id, kTraceId);
    EXPECT_TRUE(span_ids.count(ctx->parent_span_id)) << tp;
  }
  // The API shows the run's trace.
  const auto detail = served_->call("GET", "/v1/runs/" + run_id, operator_);
  ASSERT_EQ(detail.status, 200);
  EXPECT_EQ(detail.json().at("trace_id"), kTraceId);
}

TEST_F(TracesTest, WithoutATraceparentARunStartsItsOwnTrace) {
  FakeHttpServer collector([](const ReceivedRequest&, int) { return 200; });
  serve(collector.url(""), Millis(5'000));
  // Malformed: ignored, never an error.
  const auto a = send_event({{"traceparent", "00-not-a-trace-01"}});
  const auto b = send_event();
  ASSERT_TRUE(harness_->wait_status(a, "succeeded"));
  ASSERT_TRUE(harness_->wait_status(b, "succeeded"));
  const auto trace_a =
      served_->call("GET", "/v1/runs/" + std::to_string(a), operator_).json().value("trace_id", "");
  const auto trace_b =
      served_->call("GET", "/v1/runs/" + std::to_string(b), operator_).json().value("trace_id", "");
  EXPECT_TRUE(core::valid_trace_id(trace_a)) << trace_a;
  EXPECT_TRUE(core::valid_trace_id(trace_b)) << trace_b;
  EXPECT_NE(trace_a, trace_b);
  ASSERT_TRUE(wait_until([&] {
    for (const auto& s : received_spans(collector))
      if (s.at("traceId") == trace_a && s.at("name") == "run traced") return true;
    return false;
  }));
  for (const auto& s : received_spans(collector)) {
    if (s.at("name") == "run traced") {
      EXPECT_FALSE(s.contains("parentSpanId")) << s.dump();
    }
  }
}

// A collector that accepts connections and never answers: each export waits out its timeout.
class SilentCollector {
 public:
  SilentCollector() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 64);  // the kernel completes connections; nobody reads them
  }
  ~SilentCollector() { ::close(fd_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(TracesTest, ACollectorThatNeverAnswersDelaysNoStep) {
  SilentCollector collector;
  const Millis export_timeout(6'000);
  serve(collector.url(), export_timeout);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::int64_t> runs;
  runs.reserve(3);
  for (int i = 0; i < 3; ++i) runs.push_back(send_event());
  for (auto run : runs) ASSERT_TRUE(harness_->wait_status(run, "succeeded", export_timeout));
  // An export was under way (waiting on the silent collector) while the steps ran on.
  ASSERT_TRUE(wait_until([&] { return exporter_->requests() >= 1; }));
  // Had a step waited on one export, three runs (each with spans to send) would need at least
  // one export timeout; they finish well within it.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, export_timeout);
  EXPECT_EQ(exporter_->exported(), 0U);
}

// A run started by another's end (workflow.succeeded) stays in that run's trace, under its root
// span, so one trace follows the chain from its first event.
TEST_F(TracesTest, AChainedRunJoinsTheTraceOfTheRunThatEnded) {
  const std::string after = R"(
name: after-traced
on:
  - event: workflow.succeeded
    filter: { path: /event/workflow, equals: traced }
steps:
  next: { handler: noop }
)";
  FakeHttpServer collector([](const ReceivedRequest&, int) { return 200; });
  serve(collector.url(""), Millis(5'000), {kTraced, after});
  const auto first = send_traced("demo.traced", Json{{"chart", "c-1"}});
  ASSERT_TRUE(harness_->wait_status(first, "succeeded"));
  std::int64_t chained = 0;
  ASSERT_TRUE(wait_until([&] {
    chained = std::stoll(
        scalar("SELECT coalesce(max(id), 0) FROM workflow_run WHERE workflow = 'after-traced'"));
    return chained > 0;
  }));
  ASSERT_TRUE(harness_->wait_status(chained, "succeeded"));
  EXPECT_EQ(scalar("SELECT e.trace_id || ' ' || e.trace_parent FROM workflow_run r JOIN event e "
                   "ON e.id = r.event_id WHERE r.id = " +
                   std::to_string(chained)),
            std::string(kTraceId) + " " + core::run_span_id(kTraceId, first));
  const auto detail = served_->call("GET", "/v1/runs/" + std::to_string(chained), operator_);
  EXPECT_EQ(detail.json().value("trace_id", ""), kTraceId);
  // Both roots in the collector, the chained one under the first.
  const Json* root = nullptr;
  std::vector<Json> spans;
  ASSERT_TRUE(wait_until([&] {
    spans = received_spans(collector);
    root = nullptr;
    bool first_seen = false;
    for (const auto& s : spans) {
      if (s.at("name") == "run after-traced") root = &s;
      if (s.at("name") == "run traced") first_seen = true;
    }
    return root != nullptr && first_seen;
  }));
  EXPECT_EQ(root->at("traceId"), kTraceId);
  EXPECT_EQ(root->at("parentSpanId"), core::run_span_id(kTraceId, first));
}

// Spans of attempts the dispatcher ended, in the run's trace with status error and ids only.
std::optional<Json> span_named(const FakeHttpServer& collector, const std::string& name,
                               int attempt) {
  for (const auto& s : received_spans(collector))
    if (s.at("name") == name)
      if (auto a = attribute(s, "chartflow.attempt");
          a && a->value("intValue", "") == std::to_string(attempt))
        return s;
  return std::nullopt;
}

const std::string kHeld = R"(
name: held
on: [{ event: demo.held }]
steps:
  slow: { handler: held_once, timeout: 300ms, retry: { max_attempts: 2, initial: 10ms, jitter: 0 } }
)";

TEST_F(TracesTest, AnAttemptEndedByItsTimeoutIsASpanWithAnError) {
  FakeHttpServer collector([](const ReceivedRequest&, int) { return 200; });
  serve(collector.url(""), Millis(5'000), {kTraced, kHeld});
  const auto run = send_traced("demo.held", Json::object());
  ASSERT_TRUE(held_->wait_held());
  std::optional<Json> span;
  // The timeout (300 ms) passes while the handler holds: the dispatcher ends the attempt.
  const bool seen =
      wait_until([&] { return (span = span_named(collector, "step slow", 1)).has_value(); });
  held_->release();
  ASSERT_TRUE(seen) << "no span of the timed-out attempt";
  ASSERT_TRUE(harness_->wait_status(run, "succeeded"));
  EXPECT_EQ(span->at("traceId"), kTraceId);
  EXPECT_EQ(span->at("spanId"), core::step_span_id(kTraceId, run, "slow", 1));
  EXPECT_EQ(span->at("parentSpanId"), core::run_span_id(kTraceId, run));
  EXPECT_EQ(span->at("status").value("code", 0), 2) << span->dump();
  EXPECT_EQ(span->at("status").value("message", ""), "timed_out");
  EXPECT_EQ(attribute(*span, "chartflow.outcome")->at("stringValue"), "timed_out");
  EXPECT_EQ(attribute(*span, "chartflow.step")->at("stringValue"), "slow");
  // One span per attempt: the late finisher of the ended attempt adds none.
  ASSERT_TRUE(wait_until([&] { return span_named(collector, "step slow", 2).has_value(); }));
  int of_attempt_one = 0;
  for (const auto& s : received_spans(collector))
    if (s.at("spanId") == core::step_span_id(kTraceId, run, "slow", 1)) ++of_attempt_one;
  EXPECT_EQ(of_attempt_one, 1);
}

TEST_F(TracesTest, AnAttemptWhoseLeaseExpiredIsASpanWithAnError) {
  const std::string held_long = R"(
name: held
on: [{ event: demo.held }]
steps:
  slow: { handler: held_once, timeout: 60s, retry: { max_attempts: 1 } }
)";
  FakeHttpServer collector([](const ReceivedRequest&, int) { return 200; });
  serve(collector.url(""), Millis(5'000), {kTraced, held_long});
  const auto run = send_traced("demo.held", Json::object());
  ASSERT_TRUE(held_->wait_held());
  // The worker is lost as far as the database can tell: another owner, whose lease has lapsed.
  scalar(
      "UPDATE step_run SET lease_owner = 'lost-worker', lease_expires_at = now() - "
      "interval '1 second' WHERE run_id = " +
      std::to_string(run) + " AND status = 'running'");
  std::optional<Json> span;
  const bool seen =
      wait_until([&] { return (span = span_named(collector, "step slow", 1)).has_value(); });
  held_->release();
  ASSERT_TRUE(seen) << "no span of the attempt whose lease expired";
  ASSERT_TRUE(harness_->wait_status(run, "succeeded"));
  EXPECT_EQ(span->at("traceId"), kTraceId);
  EXPECT_EQ(span->at("spanId"), core::step_span_id(kTraceId, run, "slow", 1));
  EXPECT_EQ(span->at("status").value("code", 0), 2) << span->dump();
  EXPECT_EQ(span->at("status").value("message", ""), "lease_expired");
  EXPECT_EQ(attribute(*span, "chartflow.outcome")->at("stringValue"), "lease_expired");
}

// A for_each step's fan-out and fan-in are claims without a handler: each a span of its own
// under the run's root, beside the elements' attempts.
TEST_F(TracesTest, AFanOutAndItsFanInAreSpans) {
  const std::string fan = R"(
name: fan
on: [{ event: demo.fan }]
steps:
  each: { handler: noop, for_each: /event/items }
)";
  FakeHttpServer collector([](const ReceivedRequest&, int) { return 200; });
  serve(collector.url(""), Millis(5'000), {kTraced, fan});
  const Json items = Json::array({"a", "b", "c"});
  const auto run = send_traced("demo.fan", Json{{"items", items}});
  ASSERT_TRUE(harness_->wait_status(run, "succeeded"));
  std::vector<Json> spans;
  ASSERT_TRUE(wait_until([&] {
    spans = received_spans(collector);
    return std::any_of(spans.begin(), spans.end(),
                       [](const Json& s) { return s.at("name") == "run fan"; });
  }));
  const std::string root = core::run_span_id(kTraceId, run);
  std::map<std::string, int> names;
  std::set<std::string> ids;
  for (const auto& s : spans) {
    ++names[s.at("name").get<std::string>()];
    ids.insert(s.at("spanId").get<std::string>());
    EXPECT_EQ(s.at("traceId"), kTraceId);
    if (s.at("name") != "run fan") {
      EXPECT_EQ(s.value("parentSpanId", ""), root) << s.dump();
    }
    if (s.at("name") == "fan-out each" || s.at("name") == "fan-in each") {
      EXPECT_NE(s.at("status").value("code", 0), 2) << s.dump();  // not an error
      EXPECT_EQ(attribute(s, "chartflow.elements")->at("intValue"), std::to_string(items.size()));
      EXPECT_EQ(attribute(s, "chartflow.step")->at("stringValue"), "each");
    }
  }
  EXPECT_EQ(names["fan-out each"], 1);
  EXPECT_EQ(names["fan-in each"], 1);
  for (std::size_t i = 0; i < items.size(); ++i)
    EXPECT_EQ(names["step each[" + std::to_string(i) + "]"], 1) << i;
  EXPECT_EQ(ids.size(), spans.size());  // every span its own id
}

}  // namespace
}  // namespace chartflow::testing
