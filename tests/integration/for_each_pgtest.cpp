// Fan-out (issue #18 part 3): a step with `for_each` runs once per element of a list in its run's
// context, each element a durable step of its own (row `fan[i]`) with its own retries; its
// output is the elements' outputs in list order, dependents run once all are done, an empty
// list gives [], a value that is not a list fails the step without showing the value, and
// `concurrency` bounds the elements of one run running at once. A restart mid-fan finishes the
// fan without running an element that succeeded again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A handler made of a function, for the few lines each test needs.
class Fn : public Handler {
 public:
  explicit Fn(std::function<StepOutcome(StepContext&)> fn) : fn_(std::move(fn)) {}
  StepOutcome run(StepContext& ctx) override { return fn_(ctx); }

 private:
  std::function<StepOutcome(StepContext&)> fn_;
};

// Counts the attempts each element index got, and what input each saw.
struct Calls {
  std::mutex mu;
  std::map<int, int> attempts;
  std::map<int, Json> inputs;
  void record(const Json& input) {
    std::lock_guard lock(mu);
    const int i = input.at("index").get<int>();
    ++attempts[i];
    inputs[i] = input;
  }
  int of(int i) {
    std::lock_guard lock(mu);
    return attempts[i];
  }
};

constexpr const char* kFan = R"(name: fan
on: [{ event: demo.fan }]
steps:
  extract: { handler: extract }
  fan:
    handler: element
    needs: [extract]
    for_each: /steps/extract/administrations
    input: { rate: 3 }
    retry: { max_attempts: 3, initial: 10ms, jitter: 0 }
  after: { handler: noop, needs: [fan], when: { path: /steps/fan/2/doubled, equals: 6 } }
)";

class ForEachTest : public PgTest {
 protected:
  // The fan workflow; `element` decides each element's outcome (after recording its call).
  std::unique_ptr<EngineHarness> harness(const std::function<StepOutcome(StepContext&)>& element,
                                         const runtime::EngineSettings& settings = {}) {
    auto handlers = std::make_shared<HandlerRegistry>();
    handlers->add("extract", std::make_shared<Fn>([](StepContext& ctx) -> StepOutcome {
                    return Completed{Json{{"administrations", ctx.event().at("items")}}};
                  }));
    handlers->add("element", std::make_shared<Fn>([this, element](StepContext& ctx) {
                    calls_.record(ctx.input());
                    return element(ctx);
                  }));
    return std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{kFan}, handlers,
                                           settings);
  }
  static StepOutcome doubled(StepContext& ctx) {
    return Completed{
        Json{{"doubled", ctx.input().at("item").get<int>() * 2}, {"rate", ctx.input().at("rate")}}};
  }
  Calls calls_;
};

TEST_F(ForEachTest, EachElementRunsWithItsItemAndTheOutputsComeInListOrder) {
  auto h = harness(doubled);
  h->start();
  const auto id = h->start_run("demo.fan", {{"items", {1, 2, 3, 4}}});
  ASSERT_TRUE(h->wait_status(id, "succeeded")) << h->run(id).dump(2);
  const Json fan = h->step(id, "fan");
  EXPECT_EQ(fan.at("status"), "succeeded");
  EXPECT_EQ(fan.at("output"), Json::parse(R"([{"doubled":2,"rate":3},{"doubled":4,"rate":3},
                                              {"doubled":6,"rate":3},{"doubled":8,"rate":3}])"));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(calls_.of(i), 1) << i;
    EXPECT_EQ(calls_.inputs[i], Json({{"rate", 3}, {"item", i + 1}, {"index", i}}));
    EXPECT_EQ(h->step(id, "fan[" + std::to_string(i) + "]").at("status"), "succeeded");
  }
  // A later condition reads the third element's output as /steps/fan/2/...
  EXPECT_EQ(h->step(id, "after").at("status"), "succeeded");
}

TEST_F(ForEachTest, AnEmptyListSucceedsWithAnEmptyArray) {
  auto h = harness(doubled);
  h->start();
  const auto id = h->start_run("demo.fan", {{"items", Json::array()}});
  ASSERT_TRUE(h->wait_status(id, "succeeded")) << h->run(id).dump(2);
  EXPECT_EQ(h->step(id, "fan").at("output"), Json::array());
  EXPECT_EQ(h->step(id, "after").at("status"), "skipped");  // no third element
  EXPECT_TRUE(calls_.attempts.empty());
}

TEST_F(ForEachTest, AValueThatIsNotAListFailsTheStepWithoutShowingIt) {
  auto h = harness(doubled);
  h->start();
  const auto id = h->start_run("demo.fan", {{"items", "Jane Doe, MRN 12345"}});
  ASSERT_TRUE(h->wait_status(id, "failed")) << h->run(id).dump(2);
  const Json fan = h->step(id, "fan");
  EXPECT_EQ(fan.at("status"), "failed");
  EXPECT_EQ(fan.at("error"), "for_each /steps/extract/administrations is string, not an array");
  // The event and the extract step's output hold the value; what the fan says does not.
  EXPECT_THAT(h->run(id).at("error").get<std::string>(), Not(HasSubstr("Jane")));
  EXPECT_THAT(h->run(id).at("error").get<std::string>(), HasSubstr("is string, not an array"));
  EXPECT_TRUE(calls_.attempts.empty());
}

TEST_F(ForEachTest, AFailedElementRetriesAloneAndSucceededOnesAreNotRunAgain) {
  auto h = harness([this](StepContext& ctx) -> StepOutcome {
    if (ctx.input().at("index") == 1 && calls_.of(1) == 1) return Retry{"insurer down", {}};
    return doubled(ctx);
  });
  h->start();
  const auto id = h->start_run("demo.fan", {{"items", {1, 2, 3}}});
  ASSERT_TRUE(h->wait_status(id, "succeeded")) << h->run(id).dump(2);
  EXPECT_EQ(calls_.of(0), 1);
  EXPECT_EQ(calls_.of(1), 2);
  EXPECT_EQ(calls_.of(2), 1);
  EXPECT_EQ(h->step(id, "fan[1]").at("attempts"), 2);
  EXPECT_EQ(h->step(id, "fan").at("output").at(1), Json({{"doubled", 4}, {"rate", 3}}));
}

TEST_F(ForEachTest, AnElementOutOfAttemptsFailsItsRun) {
  auto h = harness([](StepContext& ctx) -> StepOutcome {
    if (ctx.input().at("index") == 1) return Retry{"insurer down", {}};
    return doubled(ctx);
  });
  h->start();
  const auto id = h->start_run("demo.fan", {{"items", {1, 2, 3}}});
  ASSERT_TRUE(h->wait_status(id, "failed")) << h->run(id).dump(2);
  EXPECT_EQ(calls_.of(1), 3);
  EXPECT_EQ(h->step(id, "fan[1]").at("status"), "failed");
  EXPECT_THAT(h->run(id).at("error").get<std::string>(), HasSubstr("fan[1]"));
  EXPECT_EQ(h->step(id, "after").at("status"), "pending");
  // The step's own row never collected: it still waits for its elements.
  EXPECT_EQ(h->step(id, "fan").at("status"), "pending");
}

constexpr const char* kBounded = R"(name: bounded
on: [{ event: demo.bounded }]
steps:
  fan: { handler: measured, for_each: /event/items, concurrency: 2 }
)";

TEST_F(ForEachTest, ConcurrencyBoundsTheElementsRunningAtOnce) {
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  int most = 0;
  auto handlers = std::make_shared<HandlerRegistry>();
  handlers->add("measured", std::make_shared<Fn>([&](StepContext&) -> StepOutcome {
                  std::unique_lock lock(mu);
                  most = std::max(most, ++running);
                  cv.notify_all();
                  // Holds on while a third element could start beside it (a bound of 2 never lets
                  // one; then the window closes), so overlap beyond the bound would be seen.
                  cv.wait_for(lock, std::chrono::milliseconds(300), [&] { return running > 2; });
                  --running;
                  return Completed{Json::object()};
                }));
  runtime::EngineSettings settings;
  settings.workers = 5;
  settings.batch_size = 1;
  EngineHarness h(dsn(), {kBounded}, handlers, settings);
  h.start();
  const auto id = h.start_run("demo.bounded", {{"items", {1, 2, 3, 4, 5, 6, 7, 8}}});
  ASSERT_TRUE(h.wait_status(id, "succeeded")) << h.run(id).dump(2);
  EXPECT_EQ(h.step(id, "fan").at("output").size(), 8u);
  std::lock_guard lock(mu);
  EXPECT_EQ(most, 2);  // reached, never passed
}

TEST_F(ForEachTest, ARestartMidFanFinishesItWithoutRerunningSucceededElements) {
  // The first process: one worker, one element at a time; its third element hangs (the
  // process is as good as dead) until the test lets it go, long after the restart.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> first_calls{0};
  std::map<int, std::string> ran_by;  // index -> the process whose run of it succeeded
  runtime::EngineSettings one;
  one.workers = 1;
  one.batch_size = 1;
  auto first = harness(
      [&](StepContext& ctx) -> StepOutcome {
        if (++first_calls == 3) {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return released; });
          return Completed{Json{{"by", "first"}}};
        }
        std::lock_guard lock(mu);
        ran_by[ctx.input().at("index").get<int>()] = "first";
        return Completed{Json{{"by", "first"}}};
      },
      one);
  first->start();
  const auto id = first->start_run("demo.fan", {{"items", {1, 2, 3, 4, 5}}});
  ASSERT_TRUE(wait_until([&] {
    int done = 0, running = 0;
    const Json run = first->run(id);  // kept alive for the loop
    for (const auto& s : run.at("steps")) {
      if (s.at("name").get<std::string>().rfind("fan[", 0) != 0) continue;
      done += s.at("status") == "succeeded";
      running += s.at("status") == "running";
    }
    return done == 2 && running == 1;
  })) << first->run(id).dump(2);
  // The restart: the dead process's step goes back to the queue, and a new process takes over.
  ASSERT_EQ(first->store().reclaim_all_running("restarted"), 1);
  auto second = harness([&](StepContext& ctx) -> StepOutcome {
    std::lock_guard lock(mu);
    const int i = ctx.input().at("index").get<int>();
    EXPECT_EQ(ran_by.count(i), 0u) << "element " << i << " ran again";
    ran_by[i] = "second";
    return Completed{Json{{"by", "second"}}};
  });
  second->start();
  ASSERT_TRUE(second->wait_status(id, "succeeded")) << second->run(id).dump(2);
  {
    std::lock_guard lock(mu);
    released = true;
  }
  cv.notify_all();
  first->stop();
  int by_first = 0;
  const Json fan = second->step(id, "fan");
  for (const auto& out : fan.at("output")) by_first += out.at("by") == "first";
  EXPECT_EQ(by_first, 2);  // the hung attempt's late finish did not count
  std::lock_guard lock(mu);
  EXPECT_EQ(ran_by.size(), 5u);
  int total = 0;
  for (int i = 0; i < 5; ++i) {
    total += calls_.of(i);
    if (ran_by[i] == "first") {
      EXPECT_EQ(calls_.of(i), 1) << i;
    }
  }
  EXPECT_EQ(total, 6);  // five elements, and the hung one once more
}

}  // namespace
}  // namespace chartflow::testing
