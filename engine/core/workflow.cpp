#include "core/workflow.hpp"

namespace chartflow::core {

using nlohmann::json;

int HandlerSpec::shared_limit() const {
  if ((name != "exec" && name != "python3") || !config.is_object()) return 0;
  const auto it = config.find("concurrency");
  return it != config.end() && it->is_number_integer() ? it->get<int>() : 0;
}

std::string HandlerSpec::shared_limit_key() const {
  const nlohmann::json program = {config.value("exec", nlohmann::json()),
                                  config.value("entry", nlohmann::json())};
  return "handler/" + program.dump();
}

const Step* Workflow::find_step(const std::string& step_name) const {
  for (const auto& s : steps)
    if (s.name == step_name) return &s;
  return nullptr;
}

json Workflow::to_json() const {
  json j;
  j["name"] = name;
  if (!description.empty()) j["description"] = description;
  json trig = json::array();
  for (const auto& t : triggers) {
    json tj = t.extra;
    tj["event"] = t.event;
    if (t.filter) tj["filter"] = t.filter->to_json();
    // Only when set: a definition is hashed, and the key would otherwise make every existing
    // workflow a new version.
    if (t.debounce)
      tj["debounce"] = {{"key", t.debounce->key},
                        {"window_ms", t.debounce->window.count()},
                        {"max_wait_ms", t.debounce->max_wait.count()}};
    trig.push_back(std::move(tj));
  }
  j["on"] = std::move(trig);
  json steps_j = json::array();
  for (const auto& s : steps) {
    json sj;
    sj["name"] = s.name;
    sj["handler"] = {{"name", s.handler.name}, {"config", s.handler.config}};
    sj["needs"] = s.needs;
    if (s.when) sj["when"] = s.when->to_json();
    sj["retry"] = s.retry.to_json();
    // Only when not the default: a definition is hashed, and the key would otherwise make every
    // existing workflow a new version.
    if (s.on_exhausted == OnExhausted::kPark) sj["on_exhausted"] = "park";
    sj["timeout_ms"] = s.timeout.count();
    sj["concurrency"] = {{"limit", s.concurrency.limit}, {"key", s.concurrency.key}};
    sj["input"] = s.input;
    if (s.for_each)  // only when set, as on_exhausted
      sj["for_each"] = {{"pointer", s.for_each->pointer}, {"concurrency", s.for_each->concurrency}};
    if (s.child) sj["workflow"] = s.child->workflow;  // only when set, as on_exhausted
    steps_j.push_back(std::move(sj));
  }
  j["steps"] = std::move(steps_j);
  return j;
}

Workflow Workflow::from_json(const json& j) {
  Workflow w;
  w.name = j.at("name").get<std::string>();
  w.description = j.value("description", std::string());
  for (const auto& tj : j.at("on")) {
    Trigger t;
    t.event = tj.value("event", std::string());
    if (tj.contains("filter")) t.filter = Condition::from_json(tj.at("filter"));
    if (tj.contains("debounce")) {
      const json& d = tj.at("debounce");
      t.debounce =
          Debounce{d.at("key").get<std::string>(), Millis(d.at("window_ms").get<std::int64_t>()),
                   Millis(d.at("max_wait_ms").get<std::int64_t>())};
    }
    t.extra = tj;
    t.extra.erase("event");
    t.extra.erase("filter");
    t.extra.erase("debounce");
    w.triggers.push_back(std::move(t));
  }
  for (const auto& sj : j.at("steps")) {
    Step s;
    s.name = sj.at("name").get<std::string>();
    s.handler.name = sj.at("handler").at("name").get<std::string>();
    s.handler.config = sj.at("handler").value("config", json::object());
    s.needs = sj.value("needs", std::vector<std::string>{});
    if (sj.contains("when")) s.when = Condition::from_json(sj.at("when"));
    s.retry = RetryPolicy::from_json(sj.value("retry", json::object()));
    if (sj.value("on_exhausted", "fail") == "park") s.on_exhausted = OnExhausted::kPark;
    s.timeout = Millis(sj.value("timeout_ms", kDefaultStepTimeout.count()));
    if (sj.contains("concurrency")) {
      s.concurrency.limit = sj.at("concurrency").value("limit", 0);
      s.concurrency.key = sj.at("concurrency").value("key", std::string());
    }
    s.input = sj.value("input", json::object());
    if (sj.contains("for_each"))
      s.for_each = ForEach{sj.at("for_each").at("pointer").get<std::string>(),
                           sj.at("for_each").value("concurrency", 0)};
    if (sj.contains("workflow")) s.child = ChildWorkflow{sj.at("workflow").get<std::string>(), 0};
    w.steps.push_back(std::move(s));
  }
  return w;
}

}  // namespace chartflow::core
