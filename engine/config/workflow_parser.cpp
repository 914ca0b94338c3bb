#include "config/workflow_parser.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "config/yaml_helpers.hpp"
#include "core/cron.hpp"
#include "engine/util/yaml_json.hpp"

namespace chartflow::config {
namespace {

using nlohmann::json;

constexpr int kMaxAttemptsLimit = 100;
// Schedule triggers start runs as this event type; the scheduler fills in the body.
constexpr const char* kScheduleEvent = "schedule.tick";
// Missed ticks fired after an outage at most (per schedule with catch_up: true).
constexpr std::int64_t kMaxCatchUpLimit = 1000;
// A debounce without max_wait waits at most this many windows after the first event.
constexpr int kDefaultMaxWaitWindows = 10;
constexpr core::Millis kMaxDebounce = std::chrono::hours(24 * 30);  // "30d" in messages

}  // namespace

LoadResult WorkflowParser::load(const std::string& text) {
  workflow_.source_file = file_;
  DocumentCount docs;
  YAML::Node first;
  // Definitions are stored and hashed as JSON, which holds only UTF-8 (found by fuzzing: the
  // hash threw on a file with a stray Latin-1 byte).
  if (auto bad = first_invalid_utf8(text)) {
    error(1 + static_cast<int>(std::count(text.begin(), text.begin() + *bad, '\n')),
          fmt::format("file is not valid UTF-8 (byte {})", *bad + 1));
    return finish();
  }
  try {
    docs = count_documents(text);
    if (docs.count > 0) first = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    error(e.mark.is_null() ? 0 : e.mark.line + 1, "YAML syntax error: " + e.msg);
  }
  if (errors_.empty()) {
    if (docs.count == 0) {
      error(1, "file is empty; a workflow needs name, on and steps");
    } else {
      if (docs.count > 1)
        error(docs.second_line, "file holds 2 YAML documents or more; put one workflow per file");
      parse_workflow(first);
    }
  }
  if (errors_.empty()) {
    // YAML escapes can make bytes the file itself did not hold (found by fuzzing: a NUL in a
    // plain scalar came out as a stray 0xA0), and the definition is stored and hashed as JSON.
    try {
      (void)workflow_.to_json().dump();
    } catch (const json::type_error&) {
      error(0, "a value is not valid UTF-8 once its YAML escapes are read");
    }
  }
  return finish();
}

LoadResult WorkflowParser::finish() {
  LoadResult result;
  result.errors = errors_.take_sorted();
  if (result.errors.empty()) result.workflow = std::move(workflow_);
  return result;
}

void WorkflowParser::parse_workflow(const YAML::Node& root) {
  if (!root.IsMap()) {
    error(std::max(1, yaml_line(root)),
          "a workflow file must be a mapping with keys name, on and steps, not " + describe(root));
    return;
  }
  const auto entries =
      reader_.read_map(root, "", {"name", "description", "on", "steps", "on_exhausted"});
  const int root_line = std::max(1, yaml_line(root));
  if (const Entry* e = find(entries, "name")) {
    name_line_ = e->line;
    if (auto name = reader_.string_value(*e, "")) {
      if (!valid_workflow_name(*name))
        error(e->line, fmt::format("name '{}' is not valid: use lower-case letters, digits, '.', "
                                   "'_' and '-', starting with a letter or digit, at most {} "
                                   "characters",
                                   *name, kMaxNameLength));
      workflow_.name = *name;
    }
  } else {
    error(root_line, "missing required key 'name'");
  }
  if (const Entry* e = find(entries, "description")) {
    if (auto d = reader_.string_value(*e, "")) workflow_.description = *d;
  }
  if (const Entry* e = find(entries, "on")) {
    if (!e->value.IsSequence() || e->value.size() == 0) {
      error(e->line, fmt::format("on must be a non-empty list of triggers (- event: ... or "
                                 "- schedule: ...), not {}",
                                 describe(e->value)));
    } else {
      for (std::size_t i = 0; i < e->value.size(); ++i)
        parse_trigger(e->value[i], static_cast<int>(i), e->line);
    }
  } else {
    error(root_line, "missing required key 'on' (the events that start this workflow)");
  }
  // Before the steps: it is their default.
  if (const Entry* e = find(entries, "on_exhausted")) parse_on_exhausted(*e, "", on_exhausted_);
  if (const Entry* e = find(entries, "steps")) {
    parse_steps(*e);
  } else {
    error(root_line, "missing required key 'steps'");
  }
}

void WorkflowParser::parse_trigger(const YAML::Node& node, int index, int fallback_line) {
  const std::string where = fmt::format("trigger {}: ", index + 1);
  const int line = yaml_line(node) != 0 && !node.IsNull() ? yaml_line(node) : fallback_line;
  if (!node.IsMap()) {
    error(line,
          where + "a trigger must be a mapping with event or schedule, not " + describe(node));
    return;
  }
  const auto entries = reader_.read_map(
      node, where,
      {"event", "filter", "schedule", "timezone", "catch_up", "catch_up_limit", "debounce"});
  core::Trigger t;
  const Entry* event = find(entries, "event");
  const Entry* schedule = find(entries, "schedule");
  if (event != nullptr && schedule != nullptr) {
    error(line, where + "has both event and schedule; use one trigger for each");
  } else if (event == nullptr && schedule == nullptr) {
    error(line, where + "needs 'event' (an event type) or 'schedule' (a cron expression)");
  }
  if (event != nullptr) {
    if (auto type = reader_.string_value(*event, where)) {
      if (!valid_event_type(*type))
        error(event->line, fmt::format("{}event '{}' is not a valid event type (letters, digits, "
                                       "'.', '_' and '-')",
                                       where, *type));
      t.event = *type;
    }
  }
  if (schedule != nullptr) {
    if (auto cron = reader_.string_value(*schedule, where)) {
      std::string problem;
      if (cron->empty()) {
        error(schedule->line, where + "schedule is empty");
      } else if (!core::Cron::parse(*cron, &problem)) {
        error(schedule->line, where + problem);
      }
      t.extra["schedule"] = *cron;
    }
    t.event = kScheduleEvent;
  }
  for (const char* key : {"timezone", "catch_up", "catch_up_limit"}) {
    const Entry* e = find(entries, key);
    if (e == nullptr) continue;
    if (schedule == nullptr) {
      error(e->line, fmt::format("{}{} applies only to schedule triggers", where, key));
    } else if (e->key == "timezone") {
      if (auto tz = reader_.string_value(*e, where)) {
        if (!known_zone(*tz))
          error(e->line, fmt::format("{}timezone '{}' is not a known IANA time zone (e.g. "
                                     "Europe/Berlin, UTC)",
                                     where, *tz));
        t.extra["timezone"] = *tz;
      }
    } else if (e->key == "catch_up_limit") {
      const json n = yaml_scalar_to_json(e->value);
      if (n.is_number_integer() && n.get<std::int64_t>() >= 1 &&
          n.get<std::int64_t>() <= kMaxCatchUpLimit) {
        t.extra["catch_up_limit"] = n;
      } else {
        error(e->line, fmt::format("{}catch_up_limit must be an integer from 1 to {}, not {}",
                                   where, kMaxCatchUpLimit, describe(e->value)));
      }
    } else {
      const json b = yaml_scalar_to_json(e->value);
      if (b.is_boolean()) {
        t.extra["catch_up"] = b;
      } else {
        error(e->line, where + "catch_up must be true or false, not " + describe(e->value));
      }
    }
  }
  if (const Entry* e = find(entries, "debounce")) {
    if (schedule != nullptr) {
      error(e->line, where + "debounce applies only to event triggers");
    } else {
      t.debounce = parse_debounce(*e, where);
    }
  }
  if (const Entry* e = find(entries, "filter")) {
    std::vector<std::pair<std::string, int>> paths;
    t.filter = reader_.condition_value(*e, where, paths);
    for (const auto& [path, path_line] : paths)
      if (!is_event_path(path))
        error(path_line, fmt::format("{}filter: path '{}' must start with /event (a trigger "
                                     "filter sees only the event)",
                                     where, path));
  }
  workflow_.triggers.push_back(std::move(t));
}

// An event without a value at the key starts its run at once: there is nothing to coalesce it
// with (docs/workflows.md, "Debounce").
std::optional<core::Debounce> WorkflowParser::parse_debounce(const Entry& e,
                                                             const std::string& where) {
  const std::string inner = where + "debounce: ";
  if (!e.value.IsMap()) {
    error(e.line, inner + "must be a mapping { key: /event/..., window: 30s, max_wait: 5m }, not " +
                      describe(e.value));
    return std::nullopt;
  }
  const std::size_t errors_before = errors_.size();
  const auto entries = reader_.read_map(e.value, inner, {"key", "window", "max_wait"});
  core::Debounce d;
  if (const Entry* k = find(entries, "key")) {
    if (auto key = reader_.string_value(*k, inner)) {
      // A value inside the event: the whole event as a key would coalesce only exact repeats.
      if (key->size() <= 7 || !is_event_pointer(*key))
        error(k->line, fmt::format("{}key '{}' must be a JSON pointer into the event, such as "
                                   "/event/chart_id",
                                   inner, *key));
      d.key = *key;
    }
  } else {
    error(e.line, inner + "missing required key 'key'");
  }
  // A start pending for longer is no debounce; the bound also keeps the default max_wait exact.
  const auto bounded = [&](const Entry& x) -> std::optional<core::Millis> {
    auto v = reader_.duration_value(x, inner);
    if (v && *v > kMaxDebounce) {
      error(x.line, fmt::format("{}{}: must be at most 30d", inner, x.key));
      return std::nullopt;
    }
    return v;
  };
  if (const Entry* w = find(entries, "window")) {
    if (auto v = bounded(*w)) d.window = *v;
  } else {
    error(e.line, inner + "missing required key 'window'");
  }
  const Entry* m = find(entries, "max_wait");
  if (m != nullptr) {
    if (auto v = bounded(*m)) d.max_wait = *v;
  } else if (d.window.count() > 0) {
    d.max_wait = d.window * kDefaultMaxWaitWindows;
  }
  if (m != nullptr && d.window.count() > 0 && d.max_wait.count() > 0 && d.max_wait < d.window)
    error(m->line, fmt::format("{}max_wait ({}) must not be shorter than window ({})", inner,
                               core::format_duration(d.max_wait), core::format_duration(d.window)));
  if (errors_.size() != errors_before) return std::nullopt;
  return d;
}

void WorkflowParser::parse_steps(const Entry& e) {
  if (!e.value.IsMap() || e.value.size() == 0) {
    error(e.line, "steps must be a mapping of step name to step with at least one step, not " +
                      describe(e.value));
    return;
  }
  std::vector<ParsedStep> steps;
  for (const Entry& s : reader_.read_map(e.value, "steps: ", {}, "step"))
    steps.push_back(parse_step(s));
  workflow_.steps = order_steps(std::move(steps), errors_);
}

ParsedStep WorkflowParser::parse_step(const Entry& e) {
  ParsedStep p;
  p.line = e.line;
  p.step.name = e.key;
  p.step.on_exhausted = on_exhausted_;
  const std::string where = fmt::format("step '{}': ", e.key);
  if (!valid_step_name(e.key))
    error(e.line, fmt::format("step name '{}' is not valid: use lower-case letters, digits, '_' "
                              "and '-', at most {} characters",
                              e.key, kMaxNameLength));
  if (!e.value.IsMap()) {
    error(e.line,
          where + "a step must be a mapping with at least 'handler', not " + describe(e.value));
    return p;
  }
  const auto entries = reader_.read_map(e.value, where,
                                        {"handler", "needs", "input", "when", "retry", "timeout",
                                         "concurrency", "on_exhausted", "for_each", "workflow"});
  const Entry* handler = find(entries, "handler");
  const Entry* child = find(entries, "workflow");
  bool check_settings = false;
  if (handler != nullptr && child != nullptr) {
    error(child->line, where + "has both handler and workflow; a step runs one or the other");
  } else if (child != nullptr) {
    parse_child(*child, where, p.step);
  } else if (handler != nullptr) {
    check_settings = parse_handler(*handler, where, p.step.handler);
  } else {
    error(e.line, where + "missing required key 'handler' (or 'workflow' for a child workflow)");
  }
  if (const Entry* n = find(entries, "needs")) {
    std::vector<std::pair<YAML::Node, int>> items;
    if (n->value.IsScalar()) {
      items.emplace_back(n->value, n->line);
    } else if (n->value.IsSequence()) {
      for (const auto& item : n->value) items.emplace_back(item, yaml_line(item));
    } else {
      error(n->line,
            where + "needs must be a step name or a list of step names, not " + describe(n->value));
    }
    for (const auto& [item, line] : items) {
      if (!item.IsScalar()) {
        error(line != 0 ? line : n->line,
              where + "needs: each entry must be a step name, not " + describe(item));
        continue;
      }
      p.step.needs.push_back(item.Scalar());
      p.need_lines.push_back(line != 0 ? line : n->line);
    }
  }
  const Entry* input = find(entries, "input");
  if (input != nullptr) {
    auto j = input->value.IsMap() ? reader_.json_value(*input, where) : std::nullopt;
    if (!input->value.IsMap())
      error(input->line, where + "input must be a mapping, not " + describe(input->value));
    if (j) p.step.input = std::move(*j);
    check_settings = check_settings && j.has_value();
  }
  if (check_settings) {
    const bool external = handler->value.IsMap();
    validate_handler(p.step, external || input == nullptr ? handler->line : input->line, where);
  }
  if (const Entry* w = find(entries, "when"))
    p.step.when = reader_.condition_value(*w, where, p.when_paths);
  if (const Entry* r = find(entries, "retry")) parse_retry(*r, where, p.step.retry);
  if (const Entry* o = find(entries, "on_exhausted"))
    parse_on_exhausted(*o, where, p.step.on_exhausted);
  if (const Entry* t = find(entries, "timeout")) {
    if (auto d = reader_.duration_value(*t, where)) p.step.timeout = *d;
  }
  const Entry* fan = find(entries, "for_each");
  if (fan != nullptr && child != nullptr) {
    error(fan->line, where + "a child workflow step cannot have for_each");
    return p;
  }
  if (fan != nullptr) parse_for_each(*fan, where, p);
  if (const Entry* c = find(entries, "concurrency")) {
    if (fan == nullptr) {
      parse_concurrency(*c, where, p.step.concurrency);
    } else if (!c->value.IsScalar()) {
      error(c->line, where +
                         "with for_each, concurrency is how many elements of one run run at "
                         "once: a positive whole number, not " +
                         describe(c->value));
    } else if (auto n = reader_.int_value(*c, where, 1, INT32_MAX); n && p.step.for_each) {
      p.step.for_each->concurrency = static_cast<int>(*n);
    }
  }
  return p;
}

// The named workflow must exist among those loaded with this one: load_workflow_dir checks that,
// a single file cannot.
void WorkflowParser::parse_child(const Entry& e, const std::string& where, core::Step& step) {
  if (!e.value.IsScalar() || e.value.Scalar().empty() || !valid_workflow_name(e.value.Scalar())) {
    error(e.line, where + "workflow must be the name of a workflow, not " + describe(e.value));
    return;
  }
  step.child = core::ChildWorkflow{e.value.Scalar(), e.line};
  step.handler.name = core::kChildWorkflowHandler;
}

// The pointer is checked like a condition's paths (order_steps): into the event, or into the
// output of a step this one needs.
void WorkflowParser::parse_for_each(const Entry& e, const std::string& where, ParsedStep& p) {
  auto pointer = e.value.IsScalar() ? reader_.string_value(e, where) : std::nullopt;
  if (!e.value.IsScalar()) {
    error(e.line, where +
                      "for_each must be a JSON pointer to a list, such as "
                      "/steps/extract/administrations, not " +
                      describe(e.value));
    return;
  }
  if (!pointer) return;
  try {
    (void)json::json_pointer(*pointer);
  } catch (const json::exception&) {
    // Without a leading '/' it is reported below with the paths it may start with.
    if (!pointer->empty() && pointer->front() == '/') {
      error(e.line, fmt::format("{}for_each: '{}' is not a JSON pointer", where, *pointer));
      return;
    }
  }
  p.step.for_each = core::ForEach{*pointer, 0};
  p.for_each_path = {*pointer, e.line};
}

// True when the handler is known, so its settings are worth validating.
bool WorkflowParser::parse_handler(const Entry& e, const std::string& where,
                                   core::HandlerSpec& out) {
  if (e.value.IsScalar() && !e.value.Scalar().empty()) {
    out.name = e.value.Scalar();
  } else if (e.value.IsMap()) {
    const std::size_t errors_before = errors_.size();
    parse_external_handler(e, where);
    auto config = reader_.json_value(e, where);
    if (errors_.size() != errors_before || !config) return false;
    out.name = config->contains("exec") ? "exec" : "python3";
    out.config = std::move(*config);
  } else {
    error(e.line, where +
                      "handler must be a handler name or a mapping with exec: [...] or "
                      "runtime: python3, not " +
                      describe(e.value));
    return false;
  }
  if (handlers_.exists && !handlers_.exists(out.name)) {
    const bool external = e.value.IsMap();
    error(e.line, fmt::format("{}unknown handler '{}'{}", where, out.name,
                              external ? " (external handlers are not enabled here)" : ""));
    return false;
  }
  return true;
}

// A named handler reads its settings from the step's input (HandlerSpec::config is empty for
// it), an external one from its handler mapping; each is validated against what it will read.
void WorkflowParser::validate_handler(const core::Step& step, int line, const std::string& where) {
  if (!handlers_.validate) return;
  const bool external = step.handler.name == "exec" || step.handler.name == "python3";
  try {
    handlers_.validate(step.handler.name, external ? step.handler.config : step.input);
  } catch (const std::invalid_argument& ex) {
    error(line, fmt::format("{}handler '{}' rejected its settings: {}", where, step.handler.name,
                            ex.what()));
  } catch (const std::exception& ex) {
    // Not the documented way to reject settings, but a load must report, not crash.
    error(line, fmt::format("{}handler '{}' failed to check its settings: {}", where,
                            step.handler.name, ex.what()));
  }
}

// Checks the keys the engine itself interprets for exec/python3 handlers; the rest of the mapping
// belongs to the handler, whose validate() judges it.
void WorkflowParser::parse_external_handler(const Entry& e, const std::string& where) {
  const std::string inner = where + "handler: ";
  const auto entries = reader_.read_map(e.value, inner, {});
  const Entry* exec = find(entries, "exec");
  const Entry* runtime = find(entries, "runtime");
  if (exec != nullptr && runtime != nullptr) {
    error(e.line, inner + "has both exec and runtime; use one");
  } else if (exec == nullptr && runtime == nullptr) {
    error(e.line, inner + "an external handler needs exec: [program, args...] or runtime: python3");
  }
  if (exec != nullptr) {
    bool ok = exec->value.IsSequence() && exec->value.size() != 0;
    for (std::size_t i = 0; ok && i < exec->value.size(); ++i)
      ok = exec->value[i].IsScalar() && !exec->value[i].Scalar().empty();
    if (!ok)
      error(exec->line, inner +
                            "exec must be a non-empty list of strings (program, then its "
                            "arguments), not " +
                            describe(exec->value));
  }
  if (runtime != nullptr && !(runtime->value.IsScalar() && runtime->value.Scalar() == "python3"))
    error(runtime->line, inner + "runtime must be python3, not " + describe(runtime->value));
  if (const Entry* t = find(entries, "timeout")) (void)reader_.duration_value(*t, inner);
  if (const Entry* m = find(entries, "memory")) {
    if (!m->value.IsScalar() || !valid_memory_size(m->value.Scalar()))
      error(m->line, fmt::format("{}memory: {} is not a size (use e.g. 512Mi, 1Gi or bytes)", inner,
                                 describe(m->value)));
  }
  if (const Entry* c = find(entries, "concurrency"))
    (void)reader_.int_value(*c, inner, 1, INT32_MAX);
}

void WorkflowParser::parse_retry(const Entry& e, const std::string& where, core::RetryPolicy& out) {
  const std::string inner = where + "retry: ";
  if (!e.value.IsMap()) {
    error(e.line, inner +
                      "must be a mapping of max_attempts, initial, max, multiplier, jitter, "
                      "not " +
                      describe(e.value));
    return;
  }
  const auto entries =
      reader_.read_map(e.value, inner, {"max_attempts", "initial", "max", "multiplier", "jitter"});
  if (const Entry* m = find(entries, "max_attempts")) {
    if (auto n = reader_.int_value(*m, inner, 1, kMaxAttemptsLimit))
      out.max_attempts = static_cast<int>(*n);
  }
  bool durations_ok = true;
  if (const Entry* i = find(entries, "initial")) {
    auto d = reader_.duration_value(*i, inner);
    durations_ok = durations_ok && d.has_value();
    if (d) out.initial = *d;
  }
  if (const Entry* m = find(entries, "max")) {
    auto d = reader_.duration_value(*m, inner);
    durations_ok = durations_ok && d.has_value();
    if (d) out.max = *d;
  }
  if (durations_ok && out.initial > out.max)
    error(e.line, fmt::format("{}initial ({}) must not exceed max ({})", inner,
                              core::format_duration(out.initial), core::format_duration(out.max)));
  if (const Entry* m = find(entries, "multiplier")) {
    if (auto x = reader_.number_value(*m, inner, 1.0, 1e308)) out.multiplier = *x;
  }
  if (const Entry* j = find(entries, "jitter")) {
    if (auto x = reader_.number_value(*j, inner, 0.0, 1.0)) out.jitter = *x;
  }
}

void WorkflowParser::parse_on_exhausted(const Entry& e, const std::string& where,
                                        core::OnExhausted& out) {
  if (e.value.IsScalar() && e.value.Scalar() == "park") {
    out = core::OnExhausted::kPark;
  } else if (e.value.IsScalar() && e.value.Scalar() == "fail") {
    out = core::OnExhausted::kFail;
  } else {
    error(e.line,
          fmt::format("{}on_exhausted must be park or fail, not {}", where, describe(e.value)));
  }
}

void WorkflowParser::parse_concurrency(const Entry& e, const std::string& where,
                                       core::Concurrency& out) {
  if (e.value.IsScalar()) {
    if (auto n = reader_.int_value(e, where, 1, INT32_MAX)) out.limit = static_cast<int>(*n);
    return;
  }
  const std::string inner = where + "concurrency: ";
  if (!e.value.IsMap()) {
    error(e.line, inner + "must be a whole number or { limit: N, key: /event/... }, not " +
                      describe(e.value));
    return;
  }
  const auto entries = reader_.read_map(e.value, inner, {"limit", "key"});
  if (const Entry* l = find(entries, "limit")) {
    if (auto n = reader_.int_value(*l, inner, 1, INT32_MAX)) out.limit = static_cast<int>(*n);
  } else {
    error(e.line, inner + "missing required key 'limit'");
  }
  if (const Entry* k = find(entries, "key")) {
    if (auto key = reader_.string_value(*k, inner)) {
      if (!is_event_pointer(*key))
        error(k->line, fmt::format("{}key '{}' must be a JSON pointer into the event, such as "
                                   "/event/patient_id",
                                   inner, *key));
      out.key = *key;
    }
  }
}

}  // namespace chartflow::config
