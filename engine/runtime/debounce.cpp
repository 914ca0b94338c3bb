#include "runtime/debounce.hpp"

#include "engine/util/hash.hpp"
#include "runtime/engine.hpp"

namespace chartflow::runtime {
namespace {

// Longer key values are stored as their hash: the pending row's key must fit a btree entry.
constexpr std::size_t kMaxKeyBytes = 200;
// Due starts begun per dispatcher round; more are due again at its next probe, at once.
constexpr int kStartBatch = 200;

}  // namespace

std::optional<store::DebouncePlan> debounce_plan(const core::Debounce& debounce,
                                                 const store::Json& body) {
  const store::Json doc = {{"event", body}};
  const store::Json::json_pointer ptr(debounce.key);  // validated when the workflow loaded
  if (!doc.contains(ptr) || doc.at(ptr).is_null()) return std::nullopt;
  const store::Json& v = doc.at(ptr);
  store::DebouncePlan plan;
  plan.key_value = v.is_string() ? v.get<std::string>() : v.dump();
  if (plan.key_value.size() > kMaxKeyBytes)
    plan.key_value = "sha256:" + util::sha256_hex(plan.key_value);
  plan.window_ms = debounce.window.count();
  plan.max_wait_ms = debounce.max_wait.count();
  return plan;
}

void describe_debounce(store::Json& workflows, const store::Json& pending) {
  for (auto& w : workflows) {
    store::Json triggers = store::Json::array();
    const auto& versions = w.value("versions", store::Json::array());
    // Versions come newest first: the latest decides how new events are coalesced.
    if (!versions.empty())
      for (const auto& t : versions.at(0).at("definition").value("on", store::Json::array()))
        if (t.contains("debounce"))
          triggers.push_back(
              {{"event", t.value("event", "")},
               {"key", t.at("debounce").value("key", "")},
               {"window_ms", t.at("debounce").value("window_ms", std::int64_t{0})},
               {"max_wait_ms", t.at("debounce").value("max_wait_ms", std::int64_t{0})}});
    w["debounce"] = std::move(triggers);
    w["debounce_pending"] = pending.value(w.value("name", ""), 0);
  }
}

void Engine::start_debounced(store::Store& store) {
  const auto started = store.start_due_debounced(kStartBatch);
  if (started.empty()) return;
  for (const auto& s : started) {
    if (hooks_.run_started) hooks_.run_started(s.workflow);
    if (hooks_.debounced_run_started) hooks_.debounced_run_started(s.workflow, s.events);
  }
  wake_workers(static_cast<int>(started.size()));
}

}  // namespace chartflow::runtime
