#include "config/workflow_loader.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "config/config_error_matchers.hpp"
#include "core/condition.hpp"
#include "engine/util/duration.hpp"

namespace chartflow::config {

// Lets gmock print failed expectations as "file:line: message".
void PrintTo(const ConfigError& e, std::ostream* os) { *os << e.to_string(); }

namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using json = nlohmann::json;

const std::filesystem::path kSourceDir = CHARTFLOW_SOURCE_DIR;
const std::filesystem::path kTestData = kSourceDir / "tests/unit/testdata/workflows";

// What the runtime's registry would answer: a few built-ins plus the external handler kinds.
// Validation mimics the real handlers: sleep reads ms from the step input, exec its mapping.
HandlerCheck test_handlers() {
  HandlerCheck check;
  check.exists = [](const std::string& name) {
    return name == "noop" || name == "sleep" || name == "exec" || name == "python3";
  };
  check.validate = [](const std::string& name, const json& config) {
    if (name == "exec" && config.contains("env") && !config.at("env").is_object())
      throw std::invalid_argument("env must be a mapping of variable names to values");
    if (name == "sleep" && config.contains("ms") && !config.at("ms").is_number_integer())
      throw std::invalid_argument("input.ms must be an integer number of milliseconds");
  };
  return check;
}

// Raw strings in these tests start with a newline so the YAML reads from line 1.
LoadResult load(const std::string& text) {
  return load_workflow_text(text.substr(text.rfind('\n', 0) == 0 ? 1 : 0), "test.yaml",
                            test_handlers());
}

auto error_at(int line, const std::string& text) { return error_in("test.yaml", line, text); }

std::vector<std::string> step_names(const core::Workflow& w) {
  std::vector<std::string> out;
  for (const auto& s : w.steps) out.push_back(s.name);
  return out;
}

TEST(WorkflowLoader, LoadsDiamond) {
  const auto r = load_workflow_file(kSourceDir / "workflows/diamond.yaml", test_handlers());
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  const core::Workflow& w = *r.workflow;
  EXPECT_EQ(w.name, "diamond");
  EXPECT_EQ(w.source_file, (kSourceDir / "workflows/diamond.yaml").string());
  ASSERT_THAT(w.triggers, SizeIs(1));
  EXPECT_EQ(w.triggers[0].event, "demo.diamond");
  EXPECT_FALSE(w.triggers[0].filter);
  EXPECT_THAT(step_names(w), ElementsAre("a", "b", "c", "d", "e"));

  EXPECT_TRUE(w.find_step("a")->needs.empty());
  EXPECT_THAT(w.find_step("d")->needs, ElementsAre("b", "c"));
  const core::Step& b = *w.find_step("b");
  EXPECT_EQ(b.handler.name, "sleep");
  EXPECT_EQ(b.handler.config, json::object());
  EXPECT_EQ(b.input, json({{"ms", 300}}));
  EXPECT_TRUE(b.input.at("ms").is_number_integer());
  EXPECT_EQ(b.timeout, core::kDefaultStepTimeout);
  EXPECT_EQ(b.retry.max_attempts, 3);

  const core::Step& e = *w.find_step("e");
  ASSERT_TRUE(e.when);
  EXPECT_EQ(e.when->op, core::Condition::Op::kEquals);
  EXPECT_EQ(e.when->path, "/event/skip_e");
  EXPECT_EQ(e.when->value, json(false));
  EXPECT_FALSE(w.find_step("a")->when);
}

// Found by fuzzing: a control character and a NUL in a plain scalar came out of the YAML
// parser as bytes that are not UTF-8, and hashing the definition threw. Now a config error.
TEST(WorkflowLoader, ValueThatIsNotUtf8AfterYamlIsAConfigError) {
  const std::string text(
      "name: diamond\non:\n  - event: demo.diamond\nsteps:\n  a: { handler: noop }\n"
      "  e: { handler: noop, needs: [a], when: { path: /event/sk\x17\0_e, equals: false } }\n",
      153);
  LoadResult r;
  ASSERT_NO_THROW(r = load_workflow_text(text, "test.yaml", test_handlers()));
  EXPECT_FALSE(r.workflow.has_value());
  EXPECT_THAT(r.errors, Contains(Field(&ConfigError::message, HasSubstr("not valid UTF-8"))))
      << dump(r.errors);
}

TEST(WorkflowLoader, OrdersStepsTopologicallyKeepingFileOrderAmongReadySteps) {
  const auto r = load(R"(
name: order
on: [{ event: e }]
steps:
  report: { handler: noop, needs: [fetch, parse] }
  parse: { handler: noop, needs: fetch }
  fetch: { handler: noop }
  audit: { handler: noop }
)");
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  EXPECT_THAT(step_names(*r.workflow), ElementsAre("fetch", "parse", "report", "audit"));
  EXPECT_THAT(r.workflow->find_step("parse")->needs, ElementsAre("fetch"));
}

TEST(WorkflowLoader, ParsesEveryOption) {
  const auto r = load(R"(
name: everything.v2
description: "All the knobs"
on:
  - event: chart.uploaded
    filter: { all: [{ path: /event/kind, equals: pdf }, { not: { path: /event/test, exists: true } }] }
  - schedule: "0 6 * * *"
    timezone: Europe/Oslo
    catch_up: false
steps:
  fetch:
    handler: { exec: [./fetch.sh, --fast], timeout: 10s, memory: 256Mi, concurrency: 2 }
  review:
    handler: { runtime: python3, module: review }
    needs: [fetch]
    input:
      quoted: "123"
      number: 123
      negative: -7
      ratio: 1.5
      flag: true
      norway: NO
      nothing: ~
      list: [a, 2]
    when: { path: /steps/fetch/pages, gt: 0 }
    retry: { max_attempts: 5, initial: 1s, max: 1m, multiplier: 3, jitter: 0 }
    timeout: 1m30s
    concurrency: { limit: 1, key: /event/patient_id }
)");
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  const core::Workflow& w = *r.workflow;
  EXPECT_EQ(w.description, "All the knobs");
  ASSERT_THAT(w.triggers, SizeIs(2));
  ASSERT_TRUE(w.triggers[0].filter);
  EXPECT_EQ(w.triggers[0].filter->op, core::Condition::Op::kAll);
  EXPECT_EQ(w.triggers[0].extra, json::object());
  EXPECT_EQ(w.triggers[1].event, "schedule.tick");
  EXPECT_EQ(w.triggers[1].extra,
            json({{"schedule", "0 6 * * *"}, {"timezone", "Europe/Oslo"}, {"catch_up", false}}));

  const core::Step& fetch = *w.find_step("fetch");
  EXPECT_EQ(fetch.handler.name, "exec");
  EXPECT_EQ(fetch.handler.config, json({{"exec", {"./fetch.sh", "--fast"}},
                                        {"timeout", "10s"},
                                        {"memory", "256Mi"},
                                        {"concurrency", 2}}));

  const core::Step& review = *w.find_step("review");
  EXPECT_EQ(review.handler.name, "python3");
  EXPECT_EQ(review.handler.config, json({{"runtime", "python3"}, {"module", "review"}}));
  EXPECT_EQ(review.input, json::parse(R"({"quoted": "123", "number": 123, "negative": -7,
      "ratio": 1.5, "flag": true, "norway": "NO", "nothing": null, "list": ["a", 2]})"));
  EXPECT_TRUE(review.input.at("ratio").is_number_float());
  EXPECT_EQ(review.when->op, core::Condition::Op::kGreaterThan);
  EXPECT_EQ(review.retry.max_attempts, 5);
  EXPECT_EQ(review.retry.initial, core::Millis(1000));
  EXPECT_EQ(review.retry.max, core::Millis(60'000));
  EXPECT_EQ(review.retry.multiplier, 3.0);
  EXPECT_EQ(review.retry.jitter, 0.0);
  EXPECT_EQ(review.timeout, core::Millis(90'000));
  EXPECT_EQ(review.concurrency.limit, 1);
  EXPECT_EQ(review.concurrency.key, "/event/patient_id");
}

TEST(WorkflowLoader, ReportsUnknownAndMissingKeys) {
  const auto r = load(R"(
name: keys
on:
  - event: e
    filtr: { path: /event/x, exists: true }
stepz:
  a: { handler: noop }
)");
  EXPECT_FALSE(r.workflow);
  EXPECT_THAT(r.errors, ElementsAre(error_at(1, "missing required key 'steps'"),
                                    error_at(4,
                                             "trigger 1: unknown key 'filtr' (did you mean "
                                             "'filter'?); allowed keys: event, filter,"),
                                    error_at(5,
                                             "unknown key 'stepz' (did you mean 'steps'?); "
                                             "allowed keys: name, description, on, steps")))
      << dump(r.errors);
  EXPECT_EQ(r.errors[2].to_string(),
            "test.yaml:5: unknown key 'stepz' (did you mean 'steps'?); allowed keys: name, "
            "description, on, steps, on_exhausted");

  const auto s = load(R"(
name: keys
on: [{ event: e }]
steps:
  a:
    handle: noop
    retry: { max_attempts: 2, backoff: 1s }
)");
  EXPECT_THAT(s.errors, ElementsAre(error_at(4, "step 'a': missing required key 'handler'"),
                                    error_at(5,
                                             "step 'a': unknown key 'handle' (did you mean "
                                             "'handler'?); allowed keys: handler, needs, input, "
                                             "when, retry, timeout, concurrency"),
                                    error_at(6, "step 'a': retry: unknown key 'backoff'")))
      << dump(s.errors);
}

TEST(WorkflowLoader, ReportsBadSchedulesWithTheirLine) {
  const auto r = load(R"(
name: nightly
on:
  - schedule: "0 0 * *"
  - schedule: "61 * * * *"
    timezone: Europe/Atlantis
  - schedule: "@daily"
    catch_up: true
    catch_up_limit: 0
steps:
  a: { handler: noop }
)");
  EXPECT_THAT(r.errors,
              ElementsAre(error_at(3, "trigger 1: schedule '0 0 * *' must have 5 fields"),
                          error_at(4, "trigger 2: schedule '61 * * * *': minute field '61'"),
                          error_at(5,
                                   "trigger 2: timezone 'Europe/Atlantis' is not a known "
                                   "IANA time zone"),
                          error_at(8,
                                   "trigger 3: catch_up_limit must be an integer from 1 to "
                                   "1000, not '0'")))
      << dump(r.errors);
  const auto ok = load(R"(
name: nightly
on:
  - schedule: "*/5 * * * * *"
    timezone: America/New_York
    catch_up: true
    catch_up_limit: 48
steps:
  a: { handler: noop }
)");
  ASSERT_TRUE(ok.errors.empty()) << dump(ok.errors);
  EXPECT_EQ(ok.workflow->triggers[0].extra.at("catch_up_limit"), 48);
}

TEST(WorkflowLoader, ReportsWrongTypesAndBadNames) {
  const auto r = load(R"(
name: Bad_Name
description: [not, text]
on:
  - event: "has space"
  - event: ok
    catch_up: yes
steps:
  Fetch Chart: { handler: noop }
  b: { handler: noop, input: 5, timeout: [1s] }
  c:
    handler: noop
    retry: { max_attempts: five, multiplier: 0.5, jitter: 1.5 }
    concurrency: 0
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(error_at(1, "name 'Bad_Name' is not valid"),
                  error_at(2, "description must be a string, not a list"),
                  error_at(4, "trigger 1: event 'has space' is not a valid event type"),
                  error_at(6, "trigger 2: catch_up applies only to schedule triggers"),
                  error_at(8, "step name 'Fetch Chart' is not valid"),
                  error_at(9, "step 'b': input must be a mapping, not '5'"),
                  error_at(9,
                           "step 'b': timeout: expected a duration (e.g. 250ms, 3s, 1m30s), "
                           "not a list"),
                  error_at(12,
                           "step 'c': retry: max_attempts must be a whole number from "
                           "1 to 100, not 'five'"),
                  error_at(12,
                           "step 'c': retry: multiplier must be a number >= 1, not "
                           "'0.5'"),
                  error_at(12, "step 'c': retry: jitter must be a number from 0 to 1"),
                  error_at(13,
                           "step 'c': concurrency must be a whole number >= 1, not "
                           "'0'")))
      << dump(r.errors);

  const auto shapes = load(R"(
name: shapes
on: demo.event
steps: [a, b]
)");
  EXPECT_THAT(shapes.errors,
              ElementsAre(error_at(2, "on must be a non-empty list of triggers"),
                          error_at(3, "steps must be a mapping of step name to step")))
      << dump(shapes.errors);
}

TEST(WorkflowLoader, ReportsHandlerProblems) {
  const auto r = load(R"(
name: handlers
on: [{ event: e }]
steps:
  a: { handler: nosuch }
  b: { handler: { exec: [run.sh], env: [A] } }
  c:
    handler:
      exec: []
      memory: lots
      timeout: 0s
  d: { handler: { runtime: ruby } }
  e: { handler: { image: x } }
  f:
    handler: sleep
    input: { ms: soon }
)");
  EXPECT_THAT(r.errors,
              ElementsAre(error_at(4, "step 'a': unknown handler 'nosuch'"),
                          error_at(5,
                                   "step 'b': handler 'exec' rejected its settings: env must be "
                                   "a mapping"),
                          error_at(8, "step 'c': handler: exec must be a non-empty list"),
                          error_at(9, "step 'c': handler: memory: 'lots' is not a size"),
                          error_at(10, "step 'c': handler: timeout: must be greater than zero"),
                          error_at(11, "step 'd': handler: runtime must be python3, not 'ruby'"),
                          error_at(12, "step 'e': handler: an external handler needs exec"),
                          error_at(15,
                                   "step 'f': handler 'sleep' rejected its settings: "
                                   "input.ms must be an integer")))
      << dump(r.errors);

  HandlerCheck builtins_only = test_handlers();
  builtins_only.exists = [](const std::string& name) { return name == "noop"; };
  const auto external = load_workflow_text(
      "name: x\non: [{ event: e }]\nsteps:\n"
      "  a: { handler: { runtime: python3 } }\n",
      "test.yaml", builtins_only);
  EXPECT_THAT(external.errors,
              ElementsAre(error_at(4,
                                   "step 'a': unknown handler 'python3' (external handlers "
                                   "are not enabled here)")));
}

TEST(WorkflowLoader, ReportsBadNeeds) {
  const auto r = load(R"(
name: needs
on: [{ event: e }]
steps:
  fetch: { handler: noop }
  parse: { handler: noop, needs: [fetch, fecth, parse] }
  store:
    handler: noop
    needs:
      - fetch
      - fetch
)");
  EXPECT_THAT(r.errors, ElementsAre(error_at(5,
                                             "step 'parse': needs unknown step 'fecth' (did you "
                                             "mean 'fetch'?)"),
                                    error_at(5, "step 'parse': needs itself"),
                                    error_at(10, "step 'store': needs 'fetch' twice")))
      << dump(r.errors);
}

TEST(WorkflowLoader, ReportsCyclesWithTheirSteps) {
  const auto r = load(R"(
name: cycles
on: [{ event: e }]
steps:
  start: { handler: noop }
  a: { handler: noop, needs: [start, c] }
  b: { handler: noop, needs: a }
  c: { handler: noop, needs: b }
  after: { handler: noop, needs: [c] }
  x: { handler: noop, needs: y }
  y: { handler: noop, needs: x }
)");
  EXPECT_FALSE(r.workflow);
  EXPECT_THAT(r.errors,
              ElementsAre(error_at(5, "steps form a cycle: a -> c -> b -> a (each needs the next)"),
                          error_at(9, "steps form a cycle: x -> y -> x")))
      << dump(r.errors);
}

TEST(WorkflowLoader, ReportsBadDurations) {
  const auto r = load(R"(
name: durations
on: [{ event: e }]
steps:
  a:
    handler: noop
    timeout: 3 seconds
  b: { handler: noop, timeout: 0ms }
  c: { handler: noop, timeout: 30 }
  d:
    handler: noop
    retry:
      initial: 2m
      max: 1m
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(error_at(6,
                           "step 'a': timeout: '3 seconds' is not a duration (use e.g. 250ms, 3s, "
                           "1m30s)"),
                  error_at(7, "step 'b': timeout: must be greater than zero"),
                  error_at(8, "step 'c': timeout: '30' is not a duration"),
                  error_at(11, "step 'd': retry: initial (120s) must not exceed max (60s)")))
      << dump(r.errors);
}

TEST(WorkflowLoader, ReportsBadConditionsAtTheirLine) {
  const auto r = load(R"(
name: conditions
on:
  - event: e
    filter: { path: /steps/a/x, equals: 1 }
steps:
  a: { handler: noop }
  b: { handler: noop, when: { path: /event/x, equal: 1 } }
  c:
    handler: noop
    when:
      any:
        - { path: /event/x, equals: 1 }
        - { path: /event/y, gt: [1] }
  d:
    handler: noop
    needs: a
    when:
      all:
        - { path: /steps/a/ok, equals: true }
        - { path: /steps/b/ok, equals: true }
        - { path: /steps/nope/ok, equals: true }
        - { path: /steps/d/ok, equals: true }
        - { path: /input/x, exists: true }
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          error_at(4, "trigger 1: filter: path '/steps/a/x' must start with /event"),
          error_at(7, "step 'b': when: unknown condition key 'equal'"),
          error_at(13, "step 'c': when: gt takes a number or a string"),
          error_at(20,
                   "step 'd': when: path '/steps/b/ok' refers to step 'b', which 'd' does not "
                   "need; add it to needs"),
          error_at(21, "step 'd': when: path '/steps/nope/ok' refers to unknown step 'nope'"),
          error_at(22, "step 'd': when: path '/steps/d/ok' refers to the step itself"),
          error_at(23, "step 'd': when: path '/input/x' must start with /event or /steps/<step>")))
      << dump(r.errors);
}

TEST(WorkflowLoader, AcceptsConditionsOnTransitiveNeeds) {
  const auto r = load(R"(
name: transitive
on: [{ event: e }]
steps:
  a: { handler: noop }
  b: { handler: noop, needs: a }
  c: { handler: noop, needs: b, when: { path: /steps/a/ok, equals: true } }
)");
  EXPECT_TRUE(r.workflow) << dump(r.errors);
}

TEST(WorkflowLoader, ReportsDuplicateKeysAndSteps) {
  const auto r = load(R"(
name: dups
on: [{ event: e }]
steps:
  a: { handler: noop }
  a: { handler: sleep }
  b:
    handler: noop
    handler: sleep
    input: { x: 1, x: 2 }
)");
  EXPECT_THAT(r.errors,
              ElementsAre(error_at(5, "steps: duplicate step 'a' (first at line 4)"),
                          error_at(8, "step 'b': duplicate key 'handler' (first at line 7)"),
                          error_at(9, "step 'b': input: duplicate key 'x' (first at line 9)")))
      << dump(r.errors);
}

TEST(WorkflowLoader, ReportsTriggerShapes) {
  const auto r = load(R"(
name: triggers
on:
  - event: a
    schedule: "* * * * *"
  - timezone: UTC
  - schedule: "0 0 * * *"
    catch_up: sometimes
steps:
  a: { handler: noop, concurrency: { key: /steps/a } }
)");
  EXPECT_THAT(r.errors,
              ElementsAre(error_at(3, "trigger 1: has both event and schedule"),
                          error_at(5, "trigger 2: needs 'event' (an event type) or 'schedule'"),
                          error_at(5, "trigger 2: timezone applies only to schedule triggers"),
                          error_at(7, "trigger 3: catch_up must be true or false, not 'sometimes'"),
                          error_at(9, "step 'a': concurrency: missing required key 'limit'"),
                          error_at(9,
                                   "step 'a': concurrency: key '/steps/a' must be a JSON "
                                   "pointer into the event")))
      << dump(r.errors);
}

TEST(WorkflowLoader, ReportsFileLevelProblems) {
  const auto syntax = load_workflow_file(kTestData / "bad_syntax.yaml", test_handlers());
  ASSERT_THAT(syntax.errors, SizeIs(1));
  EXPECT_EQ(syntax.errors[0].line, 5);
  EXPECT_THAT(syntax.errors[0].to_string(), HasSubstr("bad_syntax.yaml:5: YAML syntax error: "));

  EXPECT_THAT(load("").errors, ElementsAre(error_at(1, "file is empty")));
  EXPECT_THAT(load("# only a comment\n").errors, ElementsAre(error_at(1, "file is empty")));
  EXPECT_THAT(load("- a\n- b\n").errors,
              ElementsAre(error_at(1, "a workflow file must be a mapping")));
  EXPECT_THAT(load(R"(
name: one
on: [{ event: e }]
steps: { a: { handler: noop } }
---
name: two
)")
                  .errors,
              ElementsAre(error_at(5, "file holds 2 YAML documents or more")));
  // yaml-cpp 0.7's LoadAll never returns on this input (found by fuzzing); the loader must.
  const auto hang =
      load_workflow_file(std::filesystem::path(CHARTFLOW_SOURCE_DIR) /
                             "tests/fuzz/corpus/workflow_config/regression-loadall-hang.yaml",
                         test_handlers());
  EXPECT_THAT(hang.errors, Not(::testing::IsEmpty()));
  // Definitions are stored as JSON: a stray Latin-1 byte is an error with its line, not a throw.
  EXPECT_THAT(load("name: x\non: [{ event: e }]\nsteps: { a: { handler: noop, input: { s: "
                   "\"caf\xe9\" } } }\n")
                  .errors,
              ElementsAre(error_at(3, "file is not valid UTF-8 (byte 73)")));
  EXPECT_THAT(load("name: caf\xc3\xa9\n").errors, Not(Contains(error_at(1, "UTF-8"))));
  EXPECT_THAT(load("name: \xed\xa0\x80\n").errors, ElementsAre(error_at(1, "not valid UTF-8")));

  const auto missing = load_workflow_file(kTestData / "no_such_file.yaml", test_handlers());
  ASSERT_THAT(missing.errors, SizeIs(1));
  EXPECT_EQ(missing.errors[0].line, 0);
  EXPECT_THAT(missing.errors[0].to_string(),
              AllOf(HasSubstr("no_such_file.yaml: cannot read file"), Not(HasSubstr(".yaml:0"))));
}

TEST(WorkflowLoader, CollectsAllErrorsInAFile) {
  const auto r = load_workflow_file(kTestData / "bad_many_errors.yaml", test_handlers());
  EXPECT_FALSE(r.workflow);
  std::vector<int> lines;
  for (const auto& e : r.errors) {
    EXPECT_EQ(e.file, (kTestData / "bad_many_errors.yaml").string());
    lines.push_back(e.line);
  }
  EXPECT_THAT(lines, ElementsAre(2, 5, 8, 9, 12, 13, 17)) << dump(r.errors);
  EXPECT_THAT(r.errors[3].message, HasSubstr("timeout: '3 seconds' is not a duration"));
  EXPECT_THAT(r.errors[6].message, HasSubstr("refers to unknown step 'other'"));
}

TEST(WorkflowLoader, AcceptsJson) {
  const auto r = load_workflow_file(kTestData / "good.json", test_handlers());
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  EXPECT_EQ(r.workflow->name, "from-json");
  EXPECT_THAT(step_names(*r.workflow), ElementsAre("fetch", "scan"));
  // Quoted JSON strings must not turn into numbers on the way through yaml-cpp.
  EXPECT_EQ(r.workflow->find_step("fetch")->input, json({{"code", "0123"}, {"count", 2}}));
  EXPECT_EQ(r.workflow->find_step("scan")->timeout, core::Millis(5000));
  ASSERT_TRUE(r.workflow->triggers[0].filter);
  EXPECT_TRUE(r.workflow->triggers[0].filter->evaluate({{"event", {{"kind", "pdf"}}}}));
}

TEST(WorkflowLoader, LoadsDirectoryAndReportsDuplicateNames) {
  const auto dir = kTestData / "dir";
  const DirResult r = load_workflow_dir(dir, test_handlers());
  ASSERT_THAT(r.workflows, SizeIs(2)) << dump(r.errors);
  EXPECT_EQ(r.workflows[0].name, "shared");
  EXPECT_EQ(r.workflows[0].triggers[0].event, "demo.first");
  EXPECT_EQ(r.workflows[1].name, "other");
  ASSERT_THAT(r.errors, SizeIs(1)) << dump(r.errors);
  EXPECT_EQ(r.errors[0].file, (dir / "20_second.yml").string());
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[0].message,
            "workflow name 'shared' is already used by " + (dir / "10_first.yaml").string() + ":1");

  const DirResult missing = load_workflow_dir(kTestData / "no_such_dir", test_handlers());
  EXPECT_TRUE(missing.workflows.empty());
  ASSERT_THAT(missing.errors, SizeIs(1));
  EXPECT_THAT(missing.errors[0].message, HasSubstr("cannot read workflow directory"));
}

TEST(WorkflowLoader, ContentHashFollowsContentOnly) {
  const std::string text = R"(
name: hashed
on: [{ event: e }]
steps:
  a: { handler: noop, input: { x: 1 } }
)";
  const auto first = load(text);
  ASSERT_TRUE(first.workflow) << dump(first.errors);
  const std::string hash = content_hash(*first.workflow);
  EXPECT_THAT(hash, ::testing::MatchesRegex("[0-9a-f]{16}"));

  // Same content from another file, with different layout and comments: same version.
  const auto moved = load_workflow_text(
      "# moved\nname: hashed\non:\n  - event: e\nsteps:\n  a:\n    input: { x: 1 }\n    handler: "
      "noop\n",
      "elsewhere.yaml", test_handlers());
  ASSERT_TRUE(moved.workflow) << dump(moved.errors);
  EXPECT_EQ(content_hash(*moved.workflow), hash);

  auto changed = *first.workflow;
  changed.steps[0].input["x"] = 2;
  EXPECT_NE(content_hash(changed), hash);
  changed = *first.workflow;
  changed.steps[0].timeout = core::Millis(1);
  EXPECT_NE(content_hash(changed), hash);
}

TEST(WorkflowLoader, RoundTripsThroughCanonicalJson) {
  const auto r = load(R"(
name: roundtrip
description: d
on:
  - event: chart.uploaded
    filter: { any: [{ path: /event/a, in: [1, 2] }, { not: { path: /event/b, exists: true } }] }
  - schedule: "*/5 * * * *"
    catch_up: true
steps:
  a: { handler: { exec: [x] }, retry: { max_attempts: 7, jitter: 0.5 }, timeout: 2s }
  b:
    handler: sleep
    needs: a
    input: { ms: 1, nested: { list: [1, "2", null] } }
    when: { path: /steps/a/n, lte: 3 }
    concurrency: { limit: 4, key: /event/patient }
)");
  ASSERT_TRUE(r.workflow) << dump(r.errors);
  const json canonical = r.workflow->to_json();
  const core::Workflow back = core::Workflow::from_json(canonical);
  EXPECT_EQ(back.to_json(), canonical);
  EXPECT_EQ(content_hash(back), content_hash(*r.workflow));
  EXPECT_EQ(back.triggers[1].event, "schedule.tick");
  EXPECT_EQ(back.triggers[1].extra, json({{"schedule", "*/5 * * * *"}, {"catch_up", true}}));
  const core::Step& b = back.steps.at(1);
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(b.concurrency.limit, 4);
  EXPECT_EQ(b.when->op, core::Condition::Op::kLessOrEqual);
  EXPECT_EQ(back.steps.at(0).retry.max_attempts, 7);
  EXPECT_EQ(back.steps.at(0).timeout, core::Millis(2000));
}

TEST(Condition, EvaluatesComparisons) {
  using core::Condition;
  const json doc = {{"event", {{"n", 5}, {"f", 2.5}, {"s", "abc"}, {"tags", {"x", "y"}}}},
                    {"steps", {{"a", {{"ok", true}}}}}};
  const auto eval = [&](const json& c) { return Condition::from_json(c).evaluate(doc); };

  EXPECT_FALSE(eval({{"path", "/event/missing"}, {"equals", nullptr}}));
  EXPECT_TRUE(eval({{"path", "/event/missing"}, {"not_equals", 1}}));
  EXPECT_TRUE(eval({{"path", "/event/n"}, {"equals", 5.0}}));
  EXPECT_TRUE(eval({{"path", "/steps/a/ok"}, {"equals", true}}));
  EXPECT_FALSE(eval({{"path", "/event/missing"}, {"exists", true}}));
  EXPECT_TRUE(eval({{"path", "/event/n"}, {"exists", true}}));

  EXPECT_TRUE(eval({{"path", "/event/n"}, {"gt", 4}}));
  EXPECT_FALSE(eval({{"path", "/event/n"}, {"gt", 5}}));
  EXPECT_TRUE(eval({{"path", "/event/n"}, {"gte", 5}}));
  EXPECT_TRUE(eval({{"path", "/event/f"}, {"lt", 3}}));
  EXPECT_FALSE(eval({{"path", "/event/s"}, {"gt", 1}}));
  EXPECT_FALSE(eval({{"path", "/event/missing"}, {"lte", 1}}));

  EXPECT_TRUE(eval({{"path", "/event/n"}, {"in", {1, 5}}}));
  EXPECT_FALSE(eval({{"path", "/event/s"}, {"in", json::array({"ab"})}}));
  EXPECT_TRUE(eval({{"path", "/event/tags"}, {"contains", "y"}}));
  EXPECT_TRUE(eval({{"path", "/event/s"}, {"contains", "bc"}}));
  EXPECT_FALSE(eval({{"path", "/event/tags"}, {"contains", "z"}}));

  const json yes = {{"path", "/event/n"}, {"equals", 5}};
  const json no = {{"path", "/event/n"}, {"equals", 6}};
  EXPECT_TRUE(eval({{"all", {yes, yes}}}));
  EXPECT_FALSE(eval({{"all", {yes, no}}}));
  EXPECT_TRUE(eval({{"any", {no, yes}}}));
  EXPECT_FALSE(eval({{"any", {no, no}}}));
  EXPECT_TRUE(eval({{"not", no}}));
  EXPECT_FALSE(eval({{"not", yes}}));

  const json nested = {{"all", {yes, {{"not", {{"any", json::array({no})}}}}}}};
  EXPECT_EQ(Condition::from_json(nested).to_json(), nested);
  EXPECT_THROW(Condition::from_json({{"path", "/event/n"}, {"gt", true}}), std::invalid_argument);
  EXPECT_THROW(Condition::from_json({{"all", json::array()}}), std::invalid_argument);
}

TEST(Duration, RejectsValuesThatWouldOverflow) {
  EXPECT_EQ(core::parse_duration("1m30s"), core::Millis(90'000));
  EXPECT_EQ(core::parse_duration("999999999999d"), std::nullopt);
  EXPECT_EQ(core::parse_duration("999999999999h999999999999h"), std::nullopt);
}

}  // namespace
}  // namespace chartflow::config
