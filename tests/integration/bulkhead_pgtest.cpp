// Slow outside calls and fair claims (issue #15, item 6): a step waiting on the network holds
// only the few workers of its bulkhead, never the threads every other step needs; steps under a
// concurrency key are claimed in their turn, not only when unkeyed ones leave room in a batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using namespace std::chrono_literals;

// An outside call that hangs, as an insurer that stopped answering does, until released (or for
// at most `cap`, the call's own timeout). Counts the calls hanging at once.
class HangingCall : public Handler {
 public:
  explicit HangingCall(bool released = false, std::chrono::milliseconds cap = 10s)
      : released_(released), cap_(cap) {}
  StepOutcome run(StepContext& /*ctx*/) override {
    std::unique_lock lock(mu_);
    peak_ = std::max(peak_, ++hanging_);
    cv_.wait_for(lock, cap_, [&] { return released_; });
    --hanging_;
    return Completed{};
  }
  std::string bulkhead() const override { return "network"; }
  void release() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }
  int hanging() const {
    std::lock_guard lock(mu_);
    return hanging_;
  }
  int peak() const {
    std::lock_guard lock(mu_);
    return peak_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool released_;
  std::chrono::milliseconds cap_;
  int hanging_ = 0;
  int peak_ = 0;
};

const std::string kCallWorkflow =
    "{name: call, on: [{event: demo.call}], steps: {call: {handler: hanging_call}}}";
const std::string kQuickWorkflow =
    "{name: quick, on: [{event: demo.quick}], steps: {a: {handler: noop}}}";

class BulkheadTest : public PgTest {};

// More hanging calls queued than there are workers of any kind: with the calls in a bulkhead of
// their own, a step started afterwards still runs at once, and no more calls hang than the
// bulkhead has workers.
TEST_F(BulkheadTest, HangingNetworkCallsLeaveTheGeneralWorkersFree) {
  auto extra = std::make_shared<HandlerRegistry>();
  auto call = std::make_shared<HangingCall>();
  extra->add("hanging_call", call);
  runtime::EngineSettings settings;
  settings.workers = 2;
  settings.batch_size = 2;
  settings.bulkhead_workers = {{"network", 2}};
  EngineHarness h(dsn(), {kCallWorkflow, kQuickWorkflow}, extra, settings);
  std::vector<std::int64_t> calls;
  for (int i = 0; i < 8; ++i) calls.push_back(h.start_run("demo.call", {{"n", i}}));
  h.start();
  ASSERT_TRUE(wait_until([&] { return call->hanging() >= 2; }, 10s));
  const auto quick = h.start_run("demo.quick");
  const bool ran = h.wait_status(quick, "succeeded", 1s);
  const int still_hanging = call->hanging();
  call->release();
  EXPECT_TRUE(ran) << "a general step waited behind hanging network calls";
  EXPECT_EQ(still_hanging, 2) << "the calls were to be hanging still";
  EXPECT_LE(call->peak(), 2) << "more calls hung at once than the bulkhead has workers";
  for (auto id : calls) EXPECT_TRUE(h.wait_status(id, "succeeded", 15s)) << id;
}

// A bulkhead of no workers is no bulkhead: its handlers run with everything else.
TEST_F(BulkheadTest, ABulkheadWithoutWorkersRunsItsStepsInTheGeneralPool) {
  auto extra = std::make_shared<HandlerRegistry>();
  auto call = std::make_shared<HangingCall>(/*released=*/true);
  extra->add("hanging_call", call);
  runtime::EngineSettings settings;
  settings.workers = 1;
  settings.bulkhead_workers = {{"network", 0}};
  EngineHarness h(dsn(), {kCallWorkflow}, extra, settings);
  h.start();
  const auto id = h.start_run("demo.call");
  EXPECT_TRUE(h.wait_status(id, "succeeded", 10s));
}

// Work that becomes due for another pool wakes that pool: the run's first step (at ingest) and
// each dependent a commit of the other pool promotes. The dispatcher's safety-net poll is far
// off, so only these wake-ups can start the steps in time.
TEST_F(BulkheadTest, WorkDueInAnotherPoolWakesThatPool) {
  auto extra = std::make_shared<HandlerRegistry>();
  extra->add("hanging_call", std::make_shared<HangingCall>(/*released=*/true));
  runtime::EngineSettings settings;
  settings.workers = 1;
  settings.bulkhead_workers = {{"network", 1}};
  settings.poll_interval = 60s;
  EngineHarness h(dsn(),
                  {"{name: relay, on: [{event: demo.relay}], steps: {n1: {handler: hanging_call}, "
                   "g: {handler: noop, needs: [n1]}, n2: {handler: hanging_call, needs: [g]}}}"},
                  extra, settings);
  h.start();
  for (int i = 0; i < 3; ++i) {
    const auto id = h.start_run("demo.relay", {{"n", i}});
    EXPECT_TRUE(h.wait_status(id, "succeeded", 5s)) << id;
  }
}

const std::string kPlainWorkflow =
    "{name: plain, on: [{event: demo.plain}], steps: {a: {handler: noop}}}";
const std::string kKeyedWorkflow =
    "{name: keyed, on: [{event: demo.keyed}], steps: {a: {handler: noop, concurrency: {limit: 1, "
    "key: /event/k}}}}";

// Claims batches of `limit` until none is left; each batch's run ids.
std::vector<std::vector<std::int64_t>> claim_all(store::Store& s, int limit) {
  std::vector<std::vector<std::int64_t>> batches;
  while (true) {
    auto steps = s.claim("claimer", limit, 60s, true);
    if (steps.empty()) return batches;
    std::vector<std::int64_t> ids;
    for (const auto& c : steps) ids.push_back(c.run_id);
    std::sort(ids.begin(), ids.end());
    batches.push_back(ids);
  }
}

// A burst of unkeyed steps, one keyed step, another burst: claimed in the order they became
// due, the keyed one among them, in batches of four.
TEST_F(BulkheadTest, KeyedAndUnkeyedStepsAreClaimedInTheOrderTheyBecameDue) {
  EngineHarness h(dsn(), {kPlainWorkflow, kKeyedWorkflow});  // not started: the test claims
  std::vector<std::int64_t> order;
  for (int i = 0; i < 10; ++i) order.push_back(h.start_run("demo.plain", {{"n", i}}));
  const auto keyed = h.start_run("demo.keyed", {{"k", "chart-1"}});
  order.push_back(keyed);
  for (int i = 0; i < 9; ++i) order.push_back(h.start_run("demo.plain", {{"n", 10 + i}}));
  const auto batches = claim_all(h.store(), 4);
  std::vector<std::int64_t> claimed;
  for (const auto& b : batches) claimed.insert(claimed.end(), b.begin(), b.end());
  // Run ids grow in the order the runs started, so FIFO batches are consecutive id ranges.
  EXPECT_EQ(claimed, order);
  ASSERT_EQ(batches.size(), 5u);
  EXPECT_NE(std::find(batches[2].begin(), batches[2].end(), keyed), batches[2].end())
      << "the keyed step, 11th due, belongs in the third batch of four";
}

// The same through a running engine: one worker, batches of four; the keyed step runs before
// every unkeyed step that became due after it.
TEST_F(BulkheadTest, AKeyedStepRunsBeforeUnkeyedStepsQueuedAfterIt) {
  struct Recorder : Handler {
    std::mutex mu;
    std::vector<std::int64_t> runs;
    StepOutcome run(StepContext& ctx) override {
      std::lock_guard lock(mu);
      runs.push_back(ctx.run_id());
      return Completed{};
    }
  };
  auto extra = std::make_shared<HandlerRegistry>();
  auto rec = std::make_shared<Recorder>();
  extra->add("rec", rec);
  runtime::EngineSettings settings;
  settings.workers = 1;
  settings.batch_size = 4;
  EngineHarness h(dsn(),
                  {"{name: plain, on: [{event: demo.plain}], steps: {a: {handler: rec}}}",
                   "{name: keyed, on: [{event: demo.keyed}], steps: {a: {handler: rec, "
                   "concurrency: {limit: 1, key: /event/k}}}}"},
                  extra, settings);
  std::vector<std::int64_t> before, after;
  for (int i = 0; i < 30; ++i) before.push_back(h.start_run("demo.plain", {{"n", i}}));
  const auto keyed = h.start_run("demo.keyed", {{"k", "chart-1"}});
  for (int i = 0; i < 30; ++i) after.push_back(h.start_run("demo.plain", {{"n", 30 + i}}));
  h.start();
  for (auto id : after) ASSERT_TRUE(h.wait_status(id, "succeeded", 20s)) << id;
  ASSERT_TRUE(h.wait_status(keyed, "succeeded", 20s));
  std::lock_guard lock(rec->mu);
  const auto at = [&](std::int64_t id) {
    return std::find(rec->runs.begin(), rec->runs.end(), id) - rec->runs.begin();
  };
  for (auto id : after) EXPECT_LT(at(keyed), at(id)) << "unkeyed run " << id << " went first";
  for (auto id : before) EXPECT_LT(at(id), at(keyed)) << "unkeyed run " << id << " went later";
}

// A key at its limit holds back neither the steps of other keys nor unkeyed ones behind it.
TEST_F(BulkheadTest, AKeyAtItsLimitHoldsBackNeitherOtherKeysNorUnkeyedSteps) {
  EngineHarness h(dsn(), {kPlainWorkflow, kKeyedWorkflow});
  std::vector<std::int64_t> busy_key;
  for (int i = 0; i < 6; ++i) busy_key.push_back(h.start_run("demo.keyed", {{"k", "chart-a"}}));
  const auto other_key = h.start_run("demo.keyed", {{"k", "chart-b"}});
  const auto plain = h.start_run("demo.plain");
  std::vector<std::int64_t> claimed;
  for (int i = 0; i < 3; ++i)
    for (const auto& c : h.store().claim("claimer", 4, 60s, true)) claimed.push_back(c.run_id);
  const auto has = [&](std::int64_t id) {
    return std::find(claimed.begin(), claimed.end(), id) != claimed.end();
  };
  EXPECT_TRUE(has(busy_key.front()));
  EXPECT_TRUE(has(other_key)) << "chart-b waited behind chart-a's queue";
  EXPECT_TRUE(has(plain));
  EXPECT_EQ(std::count_if(busy_key.begin(), busy_key.end(), has), 1) << "over chart-a's limit";
}

}  // namespace
}  // namespace chartflow::testing
