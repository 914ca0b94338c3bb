// What the claim hands a worker beside the step itself, so that the worker asks nothing more
// per step: when the step became due (a span's queue wait) and its run's reprocess flags
// (StepContext::rerun, read by billing and discharge on every step).
#include <gtest/gtest.h>

#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow {
namespace {

using chartflow::testing::EngineHarness;

const char* const kWorkflow = R"(
name: carried
on: [{ event: demo.carried }]
steps:
  only: { handler: noop }
)";

class ClaimCarriesTest : public chartflow::testing::PgTest {
 protected:
  std::unique_ptr<EngineHarness> harness() {
    return std::make_unique<EngineHarness>(dsn(), std::vector<std::string>{kWorkflow});
  }
  static std::vector<store::ClaimedStep> claim(EngineHarness& h) {
    return h.store().claim("claim-carries", 10, std::chrono::minutes(5), true);
  }
};

std::int64_t epoch_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TEST_F(ClaimCarriesTest, TheClaimedStepCarriesWhenItBecameDue) {
  auto h = harness();
  const auto id = h->start_run("demo.carried");
  // A due time of its own, well before the claim, so that no other clock could give it.
  scalar("UPDATE step_run SET run_at = '2026-01-02T03:04:05.678Z' WHERE run_id = " +
         std::to_string(id));
  const auto steps = claim(*h);
  ASSERT_EQ(steps.size(), 1U);
  ASSERT_TRUE(steps[0].ready_at.has_value()) << "the claim did not say when the step was due";
  EXPECT_EQ(epoch_ms(*steps[0].ready_at),
            std::stoll(scalar("SELECT (extract(epoch FROM run_at) * 1000)::bigint FROM step_run "
                              "WHERE run_id = " +
                              std::to_string(id))));
  EXPECT_EQ(epoch_ms(*steps[0].ready_at), 1767323045678);
}

TEST_F(ClaimCarriesTest, AStepOfAReprocessRunCarriesItsFlagsAndAnyOtherNone) {
  auto h = harness();
  const auto source = h->start_run("demo.carried");
  h->start();
  ASSERT_TRUE(h->wait_status(source, "succeeded"));
  h->stop();

  runtime::ReprocessRequest request;
  request.selection.workflow = "carried";
  request.resend = true;
  request.batch_size = 10;
  const std::int64_t job = h->engine().start_reprocess(request, "test").value("id", 0);
  ASSERT_EQ(h->engine().reprocess_batch(), 1);
  const auto fresh = h->start_run("demo.carried");
  const std::int64_t rerun_run = std::stoll(
      scalar("SELECT new_run_id FROM reprocess_item WHERE job_id = " + std::to_string(job)));

  const auto steps = claim(*h);
  ASSERT_EQ(steps.size(), 2U);
  for (const auto& s : steps) {
    if (s.run_id == rerun_run) {
      EXPECT_EQ(s.rerun,
                (Json{{"resend", true}, {"force", false}, {"job", job}, {"reprocess_of", source}}));
    } else {
      EXPECT_EQ(s.run_id, fresh);
      EXPECT_EQ(s.rerun, Json::object());
    }
  }
}

}  // namespace
}  // namespace chartflow
