// `for_each` in workflow files (issue #18 part 3): a step run once per element of a list, with
// `concurrency` bounding the elements of one run. Bad values are errors with file and line like
// every other key; the definition stores the fan-out only when a step has one. The planner's
// pure pieces (element keys, the list, an element's input, the collected output) are here too.
#include "core/for_each.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/config_error_matchers.hpp"
#include "config/workflow_loader.hpp"

namespace chartflow::config {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using json = nlohmann::json;

LoadResult load(const std::string& text) { return load_workflow_text(text, "fan.yaml", {}); }

auto error_at(int line, const std::string& text) { return error_in("fan.yaml", line, text); }

std::string with_fan(const std::string& fan_keys) {
  return "name: fan\n"
         "on: [{ event: demo.fan }]\n"
         "steps:\n"
         "  extract: { handler: noop }\n"
         "  other: { handler: noop }\n"
         "  bill: { handler: noop, needs: [extract], " +
         fan_keys + " }\n";
}

TEST(ForEachConfig, ParsesPointerAndConcurrencyAndStoresThem) {
  const auto r = load(with_fan("for_each: /steps/extract/administrations, concurrency: 5"));
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  const core::Step* bill = r.workflow->find_step("bill");
  ASSERT_TRUE(bill && bill->for_each);
  EXPECT_EQ(bill->for_each->pointer, "/steps/extract/administrations");
  EXPECT_EQ(bill->for_each->concurrency, 5);
  // The elements' bound is the fan-out's own, not a limit on the step across runs.
  EXPECT_EQ(bill->concurrency.limit, 0);
  const json stored = r.workflow->to_json();
  EXPECT_EQ(core::Workflow::from_json(stored).to_json(), stored);
  // A step without for_each stores nothing new: existing versions keep their hash.
  EXPECT_FALSE(stored.at("steps").at(0).contains("for_each"));
}

TEST(ForEachConfig, EventPointerAndNoConcurrency) {
  const auto r = load(with_fan("for_each: /event/items"));
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  EXPECT_EQ(r.workflow->find_step("bill")->for_each->concurrency, 0);
}

TEST(ForEachConfig, PointerMustBeIntoStepsOrEventWithFileAndLine) {
  EXPECT_THAT(load(with_fan("for_each: administrations")).errors,
              Contains(error_at(6,
                                "for_each: path 'administrations' must start with /event or "
                                "/steps/<step>")));
  EXPECT_THAT(load(with_fan("for_each: /steps/other/list")).errors,
              Contains(error_at(6, "refers to step 'other', which 'bill' does not need")));
  EXPECT_THAT(load(with_fan("for_each: /steps/nope/list")).errors,
              Contains(error_at(6, "refers to unknown step 'nope'")));
  EXPECT_THAT(load(with_fan("for_each: /steps/bill/list")).errors,
              Contains(error_at(6, "refers to the step itself")));
  EXPECT_THAT(load(with_fan("for_each: [a, b]")).errors,
              Contains(error_at(6, "for_each must be a JSON pointer")));
  EXPECT_THAT(load(with_fan("for_each: /event/a~2b")).errors,
              Contains(error_at(6, "for_each: '/event/a~2b' is not a JSON pointer")));
}

// Each element parks on its own (an operator retries, skips or fails `bill[1]`), per step or by
// the workflow's default.
TEST(ForEachConfig, ElementsMayPark) {
  const auto per_step = load(with_fan("for_each: /event/items, on_exhausted: park"));
  ASSERT_TRUE(per_step.workflow) << dump(per_step.errors);
  EXPECT_EQ(per_step.workflow->find_step("bill")->on_exhausted, core::OnExhausted::kPark);
  const auto by_default = load("on_exhausted: park\n" + with_fan("for_each: /event/items"));
  ASSERT_TRUE(by_default.workflow) << dump(by_default.errors);
  EXPECT_EQ(by_default.workflow->find_step("bill")->on_exhausted, core::OnExhausted::kPark);
}

TEST(ForEachConfig, ConcurrencyWithForEachIsAPositiveWholeNumber) {
  EXPECT_THAT(load(with_fan("for_each: /event/items, concurrency: 0")).errors,
              Contains(error_at(6, "concurrency")));
  EXPECT_THAT(load(with_fan("for_each: /event/items, concurrency: 2.5")).errors,
              Contains(error_at(6, "concurrency")));
  EXPECT_THAT(
      load(with_fan("for_each: /event/items, concurrency: { limit: 2, key: /event/x }")).errors,
      Contains(error_at(6,
                        "with for_each, concurrency is how many elements of one run "
                        "run at once: a positive whole number")));
}

TEST(ForEachPlan, ElementKeysRoundTrip) {
  EXPECT_EQ(core::element_key("fan", 2), "fan[2]");
  const auto k = core::parse_element_key("fan[12]");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->step, "fan");
  EXPECT_EQ(k->index, 12u);
  for (const char* bad : {"fan", "fan[]", "[1]", "fan[01]", "fan[x]", "fan[1", "fan[-1]"})
    EXPECT_FALSE(core::parse_element_key(bad)) << bad;
}

TEST(ForEachPlan, ListIsReadFromTheContextAndNonArraysAreNamedWithoutTheirValue) {
  const json event = {{"items", {1, 2}}, {"secret", "Jane Doe"}};
  const json steps = {{"extract", {{"administrations", json::array()}}}};
  auto list = core::for_each_list({"/event/items", 0}, event, steps);
  ASSERT_TRUE(std::holds_alternative<json>(list));
  EXPECT_EQ(std::get<json>(list), json({1, 2}));
  list = core::for_each_list({"/steps/extract/administrations", 0}, event, steps);
  EXPECT_EQ(std::get<json>(list), json::array());
  list = core::for_each_list({"/event/secret", 0}, event, steps);
  ASSERT_TRUE(std::holds_alternative<std::string>(list));
  EXPECT_EQ(std::get<std::string>(list), "for_each /event/secret is string, not an array");
  list = core::for_each_list({"/event/missing", 0}, event, steps);
  EXPECT_THAT(std::get<std::string>(list), HasSubstr("does not resolve"));
  list = core::for_each_list({"/steps/extract", 0}, event, steps);
  EXPECT_EQ(std::get<std::string>(list), "for_each /steps/extract is object, not an array");
}

TEST(ForEachPlan, ElementInputAndCollectedOutputs) {
  EXPECT_EQ(core::element_input({{"rate", 3}}, {{"drug", "x"}}, 1),
            json({{"rate", 3}, {"item", {{"drug", "x"}}}, {"index", 1}}));
  const json outputs = {{"fan[1]", {{"n", 1}}}, {"fan[0]", {{"n", 0}}}, {"other", 5}};
  EXPECT_EQ(core::collect_outputs(outputs, "fan", 3), json({{{"n", 0}}, {{"n", 1}}, nullptr}));
  EXPECT_EQ(core::collect_outputs(outputs, "fan", 0), json::array());
}

}  // namespace
}  // namespace chartflow::config
