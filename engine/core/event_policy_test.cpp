#include "core/event_policy.hpp"

#include <gtest/gtest.h>

namespace chartflow::core {
namespace {

TEST(ReservedEventTypes, TheEngineReservesWhatItEmits) {
  ReservedEventTypes r;
  for (const char* t : {"schedule.tick", "workflow.succeeded", "workflow.failed", "alert.firing",
                        "alert.resolved", "alert.anything", "object.created"})
    EXPECT_TRUE(r.contains(t)) << t;
  for (const char* t : {"lab.result", "alert", "alerts.firing", "workflow.succeeded2",
                        "chart.uploaded", "object.created.x"})
    EXPECT_FALSE(r.contains(t)) << t;
}

TEST(ReservedEventTypes, ModulesAddTheirOwnAndTheRefusalNamesTheType) {
  ReservedEventTypes r;
  r.add("chart.uploaded");
  r.add("chart.uploaded");
  EXPECT_TRUE(r.contains("chart.uploaded"));
  EXPECT_FALSE(r.contains("chart.uploaded.x"));
  auto why = r.refusal("chart.uploaded");
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("'chart.uploaded' is reserved"), std::string::npos) << *why;
  EXPECT_FALSE(r.refusal("lab.result"));
}

}  // namespace
}  // namespace chartflow::core
