// `debounce` on an event trigger (issue #17 item 4): events with the same key value coalesce into
// one run. Read through the stored definition (the JSON every version is kept as and hashed),
// which is what the engine plans runs from; a bad value is an error with its file and line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/config_error_matchers.hpp"
#include "config/workflow_loader.hpp"

namespace chartflow::config {
namespace {

using ::testing::ElementsAre;
using json = nlohmann::json;

LoadResult load(const std::string& text) { return load_workflow_text(text, "debounce.yaml", {}); }

auto error_at(int line, const std::string& text) { return error_in("debounce.yaml", line, text); }

TEST(Debounce, StoresKeyWindowAndMaxWaitOfTheTrigger) {
  const auto r = load(
      "name: review\n"
      "on:\n"
      "  - event: chart.uploaded\n"
      "    debounce: { key: /event/chart_id, window: 30s, max_wait: 5m }\n"
      "  - event: chart.reopened\n"
      "steps:\n"
      "  a: { handler: noop }\n");
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  const json stored = r.workflow->to_json();
  EXPECT_EQ(stored.at("on").at(0).at("debounce"),
            (json{{"key", "/event/chart_id"}, {"window_ms", 30000}, {"max_wait_ms", 300000}}))
      << stored.dump();
  // A trigger without it stores nothing new: existing workflows keep their content hash.
  EXPECT_FALSE(stored.at("on").at(1).contains("debounce")) << stored.dump();
  // Read back from the database, a version plans the same.
  EXPECT_EQ(core::Workflow::from_json(stored).to_json(), stored);
}

TEST(Debounce, MaxWaitDefaultsToTenWindows) {
  const auto r = load(
      "name: review\n"
      "on: [{ event: chart.uploaded, debounce: { key: /event/chart_id, window: 2s } }]\n"
      "steps:\n"
      "  a: { handler: noop }\n");
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  EXPECT_EQ(r.workflow->to_json().at("on").at(0).at("debounce").value("max_wait_ms", 0), 20000);
}

TEST(Debounce, ReportsBadSettingsWithTheirLine) {
  const auto r = load(
      "name: review\n"
      "on:\n"
      "  - event: a\n"
      "    debounce: { key: /steps/x, window: soon, max_wait: 5m }\n"
      "  - event: b\n"
      "    debounce:\n"
      "      key: chart_id\n"
      "      window: 1m\n"
      "      max_wait: 30s\n"
      "  - event: c\n"
      "    debounce: { window: 1s, every: 2s }\n"
      "  - schedule: \"* * * * *\"\n"
      "    debounce: { key: /event/x, window: 1s }\n"
      "  - event: d\n"
      "    debounce: 30s\n"
      "  - event: e\n"
      "    debounce: { key: /event, window: 1s }\n"
      "  - event: f\n"
      "    debounce: { key: /event/x, window: 31d }\n"
      "steps:\n"
      "  a: { handler: noop }\n");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          error_at(4,
                   "trigger 1: debounce: key '/steps/x' must be a JSON pointer into the event, "
                   "such as /event/chart_id"),
          error_at(4, "trigger 1: debounce: window"),
          error_at(7, "trigger 2: debounce: key 'chart_id' must be a JSON pointer"),
          error_at(9, "trigger 2: debounce: max_wait (30s) must not be shorter than window (60s)"),
          error_at(11, "trigger 3: debounce: unknown key 'every'"),
          error_at(11, "trigger 3: debounce: missing required key 'key'"),
          error_at(13, "trigger 4: debounce applies only to event triggers"),
          error_at(15,
                   "trigger 5: debounce: must be a mapping { key: /event/..., window: 30s, "
                   "max_wait: 5m }, not '30s'"),
          error_at(17, "trigger 6: debounce: key '/event' must be a JSON pointer"),
          error_at(19, "trigger 7: debounce: window: must be at most 30d")))
      << dump(r.errors);
}

}  // namespace
}  // namespace chartflow::config
