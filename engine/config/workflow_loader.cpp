#include "config/workflow_loader.hpp"

#include <date/tz.h>
#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "config/yaml_json.hpp"
#include "core/cron.hpp"

namespace chartflow::config {
namespace {

// The offset of the first byte that does not belong to a well-formed UTF-8 sequence.
std::optional<std::size_t> first_invalid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > text.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::nullopt;
}

struct DocumentCount {
  int count = 0;        // 0, 1 or 2 (meaning two or more)
  int second_line = 0;  // where the second document starts
};

// Counts a text's YAML documents, stopping at two. Not YAML::LoadAll: yaml-cpp 0.7 (Debian 12)
// loops forever, allocating, on some malformed input (found by fuzzing; jbeder/yaml-cpp#1319), as
// every further HandleNextDocument call yields one more null document.
DocumentCount count_documents(const std::string& text) {
  // Records where the second document's first node is, as the error points there.
  class Counter : public YAML::EventHandler {
   public:
    DocumentCount result;
    void OnDocumentStart(const YAML::Mark& mark) override {
      if (++result.count == 2) result.second_line = -(mark.line + 1);
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node_at(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node_at(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string&) override {
      node_at(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
      node_at(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
      node_at(mark);
    }
    void OnMapEnd() override {}

   private:
    // A negative line is the document start's, kept until a node gives a better one.
    void node_at(const YAML::Mark& mark) {
      if (result.count == 2 && result.second_line < 0) result.second_line = mark.line + 1;
    }
  };
  std::stringstream in(text);
  YAML::Parser parser(in);
  Counter counter;
  for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
  }
  if (counter.result.second_line < 0) counter.result.second_line = -counter.result.second_line;
  return counter.result;
}

namespace fs = std::filesystem;
using core::Millis;
using nlohmann::json;

constexpr std::size_t kMaxNameLength = 100;
constexpr int kMaxAttemptsLimit = 100;
// Schedule triggers start runs as this event type; the scheduler fills in the body.
constexpr const char* kScheduleEvent = "schedule.tick";
// Missed ticks fired after an outage at most (per schedule with catch_up: true).
constexpr std::int64_t kMaxCatchUpLimit = 1000;

bool known_zone(const std::string& name) {
  try {
    date::locate_zone(name);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// One key of a mapping. Problems with the value as a whole are reported at the key's line: an
// empty or block value has no line of its own that reads well (yaml-cpp marks the next token).
struct Entry {
  std::string key;
  int line = 0;
  YAML::Node value;
};

const Entry* find(const std::vector<Entry>& entries, std::string_view key) {
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

// First value of `key` in a mapping node; an undefined node when absent.
YAML::Node child(const YAML::Node& map, std::string_view key) {
  if (map.IsMap())
    for (const auto& kv : map)
      if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return node.size() == 0 ? "an empty mapping" : "a mapping";
    case YAML::NodeType::Sequence:
      return node.size() == 0 ? "an empty list" : "a list";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    default:
      return "nothing";
  }
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool valid_workflow_name(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength || !is_lower_alnum(s[0])) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_lower_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool valid_step_name(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_lower_alnum(c) || c == '_' || c == '-'; });
}

bool valid_event_type(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool is_event_path(const std::string& p) { return p == "/event" || p.rfind("/event/", 0) == 0; }

// Sizes as container runtimes write them: bytes, or a number with a decimal or binary unit.
bool valid_memory_size(const std::string& s) {
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (n > 1'000'000'000'000) return false;
    n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0 || n == 0) return false;
  static const std::set<std::string, std::less<>> kUnits = {
      "",   "k",  "K",  "M",  "G",  "T",   "Ki",  "Mi",  "Gi", "Ti",
      "kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"};
  return kUnits.count(std::string_view(s).substr(i)) != 0;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for a near miss, so a typo costs one look instead of a diff.
template <typename Names>
std::string did_you_mean(std::string_view word, const Names& candidates) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

struct ParsedStep {
  core::Step step;
  int line = 0;                                         // of the step's name
  std::vector<int> need_lines;                          // parallel to step.needs
  std::vector<std::pair<std::string, int>> when_paths;  // each condition path and its line
};

// Parses one file. Single use: construct, call load(), read the result.
class Loader {
 public:
  Loader(std::string file, const HandlerCheck& handlers)
      : file_(std::move(file)), handlers_(handlers) {}

  LoadResult load(const std::string& text);
  int name_line() const { return name_line_; }

 private:
  void error(int line, std::string message) {
    errors_.push_back({file_, line, std::move(message)});
  }
  LoadResult finish();  // the errors in line order, the workflow if there are none

  std::vector<Entry> read_map(const YAML::Node& map, const std::string& where,
                              std::initializer_list<std::string_view> allowed,
                              const char* noun = "key");
  std::optional<std::string> string_value(const Entry& e, const std::string& where);
  std::optional<json> json_value(const Entry& e, const std::string& where);
  std::optional<Millis> duration_value(const Entry& e, const std::string& where);
  std::optional<std::int64_t> int_value(const Entry& e, const std::string& where, std::int64_t min,
                                        std::int64_t max);
  std::optional<double> number_value(const Entry& e, const std::string& where, double min,
                                     double max);
  std::optional<core::Condition> condition_value(const Entry& e, const std::string& where,
                                                 std::vector<std::pair<std::string, int>>& paths);

  void parse_workflow(const YAML::Node& root);
  void parse_trigger(const YAML::Node& node, int index, int fallback_line);
  void parse_steps(const Entry& e);
  ParsedStep parse_step(const Entry& e);
  bool parse_handler(const Entry& e, const std::string& where, core::HandlerSpec& out);
  void validate_handler(const core::Step& step, int line, const std::string& where);
  void parse_external_handler(const Entry& e, const std::string& where);
  void parse_retry(const Entry& e, const std::string& where, core::RetryPolicy& out);
  void parse_concurrency(const Entry& e, const std::string& where, core::Concurrency& out);
  void order_steps(std::vector<ParsedStep>& steps);

  std::string file_;
  const HandlerCheck& handlers_;
  std::vector<ConfigError> errors_;
  core::Workflow workflow_;
  int name_line_ = 0;
};

LoadResult Loader::load(const std::string& text) {
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

LoadResult Loader::finish() {
  LoadResult result;
  // Parsing goes depth first and graph checks come last; line order reads better.
  std::stable_sort(errors_.begin(), errors_.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
  result.errors = std::move(errors_);
  if (result.errors.empty()) result.workflow = std::move(workflow_);
  return result;
}

std::vector<Entry> Loader::read_map(const YAML::Node& map, const std::string& where,
                                    std::initializer_list<std::string_view> allowed,
                                    const char* noun) {
  std::vector<Entry> out;
  std::map<std::string, int> first_line;
  // Range-for, not `it->first`: yaml-cpp's iterators hand out the pair by value.
  for (const auto& kv : map) {
    const int line = yaml_line(kv.first);
    if (!kv.first.IsScalar()) {
      error(line, where + "keys must be plain strings, not " + describe(kv.first));
      continue;
    }
    const std::string& key = kv.first.Scalar();
    auto [seen, inserted] = first_line.emplace(key, line);
    if (!inserted) {
      error(line,
            fmt::format("{}duplicate {} '{}' (first at line {})", where, noun, key, seen->second));
      continue;
    }
    if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      error(line, fmt::format("{}unknown key '{}'{}; allowed keys: {}", where, key,
                              did_you_mean(key, allowed), list));
      continue;
    }
    out.push_back({key, line, kv.second});
  }
  return out;
}

std::optional<std::string> Loader::string_value(const Entry& e, const std::string& where) {
  if (!e.value.IsScalar()) {
    error(e.line, fmt::format("{}{} must be a string, not {}", where, e.key, describe(e.value)));
    return std::nullopt;
  }
  return e.value.Scalar();
}

std::optional<json> Loader::json_value(const Entry& e, const std::string& where) {
  std::vector<YamlIssue> issues;
  json j = yaml_to_json(e.value, issues);
  for (const auto& issue : issues)
    error(issue.line != 0 ? issue.line : e.line, where + e.key + ": " + issue.message);
  if (!issues.empty()) return std::nullopt;
  return j;
}

std::optional<Millis> Loader::duration_value(const Entry& e, const std::string& where) {
  if (!e.value.IsScalar()) {
    error(e.line, fmt::format("{}{}: expected a duration (e.g. 250ms, 3s, 1m30s), not {}", where,
                              e.key, describe(e.value)));
    return std::nullopt;
  }
  const auto d = core::parse_duration(e.value.Scalar());
  if (!d) {
    error(e.line, fmt::format("{}{}: '{}' is not a duration (use e.g. 250ms, 3s, 1m30s)", where,
                              e.key, e.value.Scalar()));
    return std::nullopt;
  }
  if (d->count() <= 0) {
    error(e.line, fmt::format("{}{}: must be greater than zero", where, e.key));
    return std::nullopt;
  }
  return d;
}

std::optional<std::int64_t> Loader::int_value(const Entry& e, const std::string& where,
                                              std::int64_t min, std::int64_t max) {
  const json j = yaml_scalar_to_json(e.value);
  if (!j.is_number_integer() || j.get<std::int64_t>() < min || j.get<std::int64_t>() > max) {
    const std::string range =
        max >= INT32_MAX ? fmt::format(">= {}", min) : fmt::format("from {} to {}", min, max);
    error(e.line, fmt::format("{}{} must be a whole number {}, not {}", where, e.key, range,
                              describe(e.value)));
    return std::nullopt;
  }
  return j.get<std::int64_t>();
}

std::optional<double> Loader::number_value(const Entry& e, const std::string& where, double min,
                                           double max) {
  const json j = yaml_scalar_to_json(e.value);
  if (!j.is_number() || j.get<double>() < min || j.get<double>() > max) {
    const std::string range =
        max > 1e300 ? fmt::format(">= {}", min) : fmt::format("from {} to {}", min, max);
    error(e.line,
          fmt::format("{}{} must be a number {}, not {}", where, e.key, range, describe(e.value)));
    return std::nullopt;
  }
  return j.get<double>();
}

// Finds the innermost part of a condition that Condition::from_json rejects, so the error points
// at the broken leaf of a long all:/any: list rather than at its top.
YAML::Node locate_condition_error(const YAML::Node& node, const json& j) {
  if (!node.IsMap() || !j.is_object() || j.size() != 1) return node;
  const auto fails = [](const json& c) {
    try {
      (void)core::Condition::from_json(c);
      return false;
    } catch (const std::invalid_argument&) {
      return true;
    }
  };
  if (j.contains("not")) {
    const json& inner = j.at("not");
    return fails(inner) ? locate_condition_error(child(node, "not"), inner) : node;
  }
  for (const char* key : {"all", "any"}) {
    if (!j.contains(key)) continue;
    const json& list = j.at(key);
    const YAML::Node seq = child(node, key);
    if (!list.is_array() || !seq.IsSequence() || seq.size() != list.size()) return node;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (fails(list[i])) return locate_condition_error(seq[i], list[i]);
  }
  return node;
}

void collect_paths(const YAML::Node& node, const core::Condition& c, int fallback_line,
                   std::vector<std::pair<std::string, int>>& out) {
  using Op = core::Condition::Op;
  if (c.op == Op::kAll || c.op == Op::kAny) {
    const YAML::Node seq = child(node, c.op == Op::kAll ? "all" : "any");
    for (std::size_t i = 0; i < c.children.size(); ++i)
      collect_paths(seq[i], c.children[i], fallback_line, out);
  } else if (c.op == Op::kNot) {
    collect_paths(child(node, "not"), c.children.at(0), fallback_line, out);
  } else {
    const int line = yaml_line(child(node, "path"));
    out.emplace_back(c.path, line != 0 ? line : fallback_line);
  }
}

std::optional<core::Condition> Loader::condition_value(
    const Entry& e, const std::string& where, std::vector<std::pair<std::string, int>>& paths) {
  const auto j = json_value(e, where);
  if (!j) return std::nullopt;
  try {
    core::Condition c = core::Condition::from_json(*j);
    collect_paths(e.value, c, e.line, paths);
    return c;
  } catch (const std::invalid_argument& ex) {
    const YAML::Node bad = locate_condition_error(e.value, *j);
    const int line = bad.is(e.value) || yaml_line(bad) == 0 ? e.line : yaml_line(bad);
    error(line, fmt::format("{}{}: {}", where, e.key, ex.what()));
    return std::nullopt;
  }
}

void Loader::parse_workflow(const YAML::Node& root) {
  if (!root.IsMap()) {
    error(std::max(1, yaml_line(root)),
          "a workflow file must be a mapping with keys name, on and steps, not " + describe(root));
    return;
  }
  const auto entries = read_map(root, "", {"name", "description", "on", "steps"});
  const int root_line = std::max(1, yaml_line(root));
  if (const Entry* e = find(entries, "name")) {
    name_line_ = e->line;
    if (auto name = string_value(*e, "")) {
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
    if (auto d = string_value(*e, "")) workflow_.description = *d;
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
  if (const Entry* e = find(entries, "steps")) {
    parse_steps(*e);
  } else {
    error(root_line, "missing required key 'steps'");
  }
}

void Loader::parse_trigger(const YAML::Node& node, int index, int fallback_line) {
  const std::string where = fmt::format("trigger {}: ", index + 1);
  const int line = yaml_line(node) != 0 && !node.IsNull() ? yaml_line(node) : fallback_line;
  if (!node.IsMap()) {
    error(line,
          where + "a trigger must be a mapping with event or schedule, not " + describe(node));
    return;
  }
  const auto entries = read_map(
      node, where, {"event", "filter", "schedule", "timezone", "catch_up", "catch_up_limit"});
  core::Trigger t;
  const Entry* event = find(entries, "event");
  const Entry* schedule = find(entries, "schedule");
  if (event != nullptr && schedule != nullptr) {
    error(line, where + "has both event and schedule; use one trigger for each");
  } else if (event == nullptr && schedule == nullptr) {
    error(line, where + "needs 'event' (an event type) or 'schedule' (a cron expression)");
  }
  if (event != nullptr) {
    if (auto type = string_value(*event, where)) {
      if (!valid_event_type(*type))
        error(event->line, fmt::format("{}event '{}' is not a valid event type (letters, digits, "
                                       "'.', '_' and '-')",
                                       where, *type));
      t.event = *type;
    }
  }
  if (schedule != nullptr) {
    if (auto cron = string_value(*schedule, where)) {
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
      if (auto tz = string_value(*e, where)) {
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
  if (const Entry* e = find(entries, "filter")) {
    std::vector<std::pair<std::string, int>> paths;
    t.filter = condition_value(*e, where, paths);
    for (const auto& [path, path_line] : paths)
      if (!is_event_path(path))
        error(path_line, fmt::format("{}filter: path '{}' must start with /event (a trigger "
                                     "filter sees only the event)",
                                     where, path));
  }
  workflow_.triggers.push_back(std::move(t));
}

void Loader::parse_steps(const Entry& e) {
  if (!e.value.IsMap() || e.value.size() == 0) {
    error(e.line, "steps must be a mapping of step name to step with at least one step, not " +
                      describe(e.value));
    return;
  }
  std::vector<ParsedStep> steps;
  for (const Entry& s : read_map(e.value, "steps: ", {}, "step")) steps.push_back(parse_step(s));
  order_steps(steps);
}

ParsedStep Loader::parse_step(const Entry& e) {
  ParsedStep p;
  p.line = e.line;
  p.step.name = e.key;
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
  const auto entries = read_map(
      e.value, where, {"handler", "needs", "input", "when", "retry", "timeout", "concurrency"});
  const Entry* handler = find(entries, "handler");
  bool check_settings = false;
  if (handler != nullptr) {
    check_settings = parse_handler(*handler, where, p.step.handler);
  } else {
    error(e.line, where + "missing required key 'handler'");
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
    auto j = input->value.IsMap() ? json_value(*input, where) : std::nullopt;
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
    p.step.when = condition_value(*w, where, p.when_paths);
  if (const Entry* r = find(entries, "retry")) parse_retry(*r, where, p.step.retry);
  if (const Entry* t = find(entries, "timeout")) {
    if (auto d = duration_value(*t, where)) p.step.timeout = *d;
  }
  if (const Entry* c = find(entries, "concurrency"))
    parse_concurrency(*c, where, p.step.concurrency);
  return p;
}

// True when the handler is known, so its settings are worth validating.
bool Loader::parse_handler(const Entry& e, const std::string& where, core::HandlerSpec& out) {
  if (e.value.IsScalar() && !e.value.Scalar().empty()) {
    out.name = e.value.Scalar();
  } else if (e.value.IsMap()) {
    const std::size_t errors_before = errors_.size();
    parse_external_handler(e, where);
    auto config = json_value(e, where);
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
void Loader::validate_handler(const core::Step& step, int line, const std::string& where) {
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
void Loader::parse_external_handler(const Entry& e, const std::string& where) {
  const std::string inner = where + "handler: ";
  const auto entries = read_map(e.value, inner, {});
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
  if (const Entry* t = find(entries, "timeout")) (void)duration_value(*t, inner);
  if (const Entry* m = find(entries, "memory")) {
    if (!m->value.IsScalar() || !valid_memory_size(m->value.Scalar()))
      error(m->line, fmt::format("{}memory: {} is not a size (use e.g. 512Mi, 1Gi or bytes)", inner,
                                 describe(m->value)));
  }
  if (const Entry* c = find(entries, "concurrency")) (void)int_value(*c, inner, 1, INT32_MAX);
}

void Loader::parse_retry(const Entry& e, const std::string& where, core::RetryPolicy& out) {
  const std::string inner = where + "retry: ";
  if (!e.value.IsMap()) {
    error(e.line, inner +
                      "must be a mapping of max_attempts, initial, max, multiplier, jitter, "
                      "not " +
                      describe(e.value));
    return;
  }
  const auto entries =
      read_map(e.value, inner, {"max_attempts", "initial", "max", "multiplier", "jitter"});
  if (const Entry* m = find(entries, "max_attempts")) {
    if (auto n = int_value(*m, inner, 1, kMaxAttemptsLimit))
      out.max_attempts = static_cast<int>(*n);
  }
  bool durations_ok = true;
  if (const Entry* i = find(entries, "initial")) {
    auto d = duration_value(*i, inner);
    durations_ok = durations_ok && d.has_value();
    if (d) out.initial = *d;
  }
  if (const Entry* m = find(entries, "max")) {
    auto d = duration_value(*m, inner);
    durations_ok = durations_ok && d.has_value();
    if (d) out.max = *d;
  }
  if (durations_ok && out.initial > out.max)
    error(e.line, fmt::format("{}initial ({}) must not exceed max ({})", inner,
                              core::format_duration(out.initial), core::format_duration(out.max)));
  if (const Entry* m = find(entries, "multiplier")) {
    if (auto x = number_value(*m, inner, 1.0, 1e308)) out.multiplier = *x;
  }
  if (const Entry* j = find(entries, "jitter")) {
    if (auto x = number_value(*j, inner, 0.0, 1.0)) out.jitter = *x;
  }
}

void Loader::parse_concurrency(const Entry& e, const std::string& where, core::Concurrency& out) {
  if (e.value.IsScalar()) {
    if (auto n = int_value(e, where, 1, INT32_MAX)) out.limit = static_cast<int>(*n);
    return;
  }
  const std::string inner = where + "concurrency: ";
  if (!e.value.IsMap()) {
    error(e.line, inner + "must be a whole number or { limit: N, key: /event/... }, not " +
                      describe(e.value));
    return;
  }
  const auto entries = read_map(e.value, inner, {"limit", "key"});
  if (const Entry* l = find(entries, "limit")) {
    if (auto n = int_value(*l, inner, 1, INT32_MAX)) out.limit = static_cast<int>(*n);
  } else {
    error(e.line, inner + "missing required key 'limit'");
  }
  if (const Entry* k = find(entries, "key")) {
    if (auto key = string_value(*k, inner)) {
      bool valid = is_event_path(*key);
      try {
        (void)json::json_pointer(*key);
      } catch (const json::exception&) {
        valid = false;
      }
      if (!valid)
        error(k->line, fmt::format("{}key '{}' must be a JSON pointer into the event, such as "
                                   "/event/patient_id",
                                   inner, *key));
      out.key = *key;
    }
  }
}

// Checks needs references, orders steps so each comes after all it needs (among ready steps,
// file order wins, so the order is stable under unrelated edits), reports cycles, then checks
// that each condition only reads outputs of steps that are guaranteed to have run.
void Loader::order_steps(std::vector<ParsedStep>& steps) {
  const std::size_t n = steps.size();
  std::map<std::string, std::size_t, std::less<>> index;
  std::vector<std::string_view> names;
  for (std::size_t i = 0; i < n; ++i) {
    index.emplace(steps[i].step.name, i);
    names.push_back(steps[i].step.name);
  }
  std::vector<std::vector<std::size_t>> deps(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string where = fmt::format("step '{}': ", steps[i].step.name);
    for (std::size_t k = 0; k < steps[i].step.needs.size(); ++k) {
      const std::string& need = steps[i].step.needs[k];
      const int line = steps[i].need_lines[k];
      auto it = index.find(need);
      if (need == steps[i].step.name) {
        error(line, where + "needs itself");
      } else if (it == index.end()) {
        error(line,
              fmt::format("{}needs unknown step '{}'{}", where, need, did_you_mean(need, names)));
      } else if (std::find(deps[i].begin(), deps[i].end(), it->second) != deps[i].end()) {
        error(line, fmt::format("{}needs '{}' twice", where, need));
      } else {
        deps[i].push_back(it->second);
      }
    }
  }

  std::vector<bool> done(n, false);  // placed, or reported as part of a cycle
  std::vector<std::size_t> order;
  while (true) {
    for (std::size_t i = 0; i < n;) {
      const bool ready = !done[i] && std::all_of(deps[i].begin(), deps[i].end(),
                                                 [&](std::size_t d) { return done[d]; });
      if (ready) {
        done[i] = true;
        order.push_back(i);
        i = 0;  // an earlier step may have become ready
      } else {
        ++i;
      }
    }
    const auto stuck = std::find(done.begin(), done.end(), false);
    if (stuck == done.end()) break;
    // Every stuck step waits on another stuck one, so walking "first unfinished need" from any of
    // them must revisit a step: that loop is a cycle.
    std::vector<std::size_t> path{static_cast<std::size_t>(stuck - done.begin())};
    while (true) {
      const auto& d = deps[path.back()];
      const std::size_t next =
          *std::find_if(d.begin(), d.end(), [&](std::size_t x) { return !done[x]; });
      const auto seen = std::find(path.begin(), path.end(), next);
      if (seen != path.end()) {
        std::vector<std::size_t> cycle(seen, path.end());
        std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
        std::string text;
        for (std::size_t c : cycle) text += steps[c].step.name + " -> ";
        text += steps[cycle.front()].step.name;
        error(steps[cycle.front()].line,
              fmt::format("steps form a cycle: {} (each needs the next)", text));
        for (std::size_t c : cycle) done[c] = true;
        break;
      }
      path.push_back(next);
    }
  }

  for (std::size_t i = 0; i < n; ++i) {
    if (steps[i].when_paths.empty()) continue;
    std::vector<bool> upstream(n, false);
    std::vector<std::size_t> todo = deps[i];
    while (!todo.empty()) {
      const std::size_t s = todo.back();
      todo.pop_back();
      if (upstream[s]) continue;
      upstream[s] = true;
      todo.insert(todo.end(), deps[s].begin(), deps[s].end());
    }
    const std::string& self = steps[i].step.name;
    for (const auto& [path, line] : steps[i].when_paths) {
      if (is_event_path(path)) continue;
      const std::string where = fmt::format("step '{}': when: path '{}' ", self, path);
      if (path.rfind("/steps/", 0) != 0 || path.size() == 7) {
        error(line, where + "must start with /event or /steps/<step>");
        continue;
      }
      const std::string target = path.substr(7, path.find('/', 7) - 7);
      const auto it = index.find(target);
      if (it == index.end()) {
        error(line, fmt::format("{}refers to unknown step '{}'", where, target));
      } else if (it->second == i) {
        error(line,
              where + "refers to the step itself; a condition sees only steps that ran before");
      } else if (!upstream[it->second]) {
        error(line, fmt::format("{}refers to step '{}', which '{}' does not need; add it to needs",
                                where, target, self));
      }
    }
  }

  for (std::size_t i : order) workflow_.steps.push_back(std::move(steps[i].step));
}

std::optional<std::string> read_file(const fs::path& path, std::string& problem) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    problem = "cannot read file: " + (ec ? ec.message() : "no such file");
    return std::nullopt;
  }
  if (!fs::is_regular_file(status)) {
    problem = "cannot read file: not a regular file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    problem = "cannot read file";
    return std::nullopt;
  }
  return text.str();
}

LoadResult load_file(const fs::path& path, const HandlerCheck& handlers, int* name_line) {
  std::string problem;
  const auto text = read_file(path, problem);
  if (!text) return LoadResult{std::nullopt, {ConfigError{path.string(), 0, problem}}};
  Loader loader(path.string(), handlers);
  LoadResult result = loader.load(*text);
  if (name_line != nullptr) *name_line = loader.name_line();
  return result;
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line <= 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}: {}", file, line, message);
}

LoadResult load_workflow_text(const std::string& text, const std::string& file_name,
                              const HandlerCheck& handlers) {
  return Loader(file_name, handlers).load(text);
}

LoadResult load_workflow_file(const fs::path& path, const HandlerCheck& handlers) {
  return load_file(path, handlers, nullptr);
}

DirResult load_workflow_dir(const fs::path& dir, const HandlerCheck& handlers) {
  DirResult out;
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name.empty() || name[0] == '.') continue;
    if (ext != ".yaml" && ext != ".yml" && ext != ".json") continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    files.push_back(it->path());
  }
  if (ec) {
    out.errors.push_back({dir.string(), 0, "cannot read workflow directory: " + ec.message()});
    return out;
  }
  std::sort(files.begin(), files.end());

  std::map<std::string, std::string> first_definition;  // workflow name -> "file:line"
  for (const auto& file : files) {
    int name_line = 0;
    LoadResult r = load_file(file, handlers, &name_line);
    out.errors.insert(out.errors.end(), r.errors.begin(), r.errors.end());
    if (!r.workflow) continue;
    const std::string where = fmt::format("{}:{}", file.string(), name_line);
    auto [it, inserted] = first_definition.emplace(r.workflow->name, where);
    if (!inserted) {
      out.errors.push_back(
          {file.string(), name_line,
           fmt::format("workflow name '{}' is already used by {}", r.workflow->name, it->second)});
      continue;
    }
    out.workflows.push_back(std::move(*r.workflow));
  }
  return out;
}

std::string content_hash(const core::Workflow& w) {
  // FNV-1a, 64-bit: the canonical dump has sorted keys, so equal definitions hash equally.
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : w.to_json().dump()) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace chartflow::config
