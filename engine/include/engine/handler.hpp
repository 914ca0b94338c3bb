// The contract between the engine and a step handler: a StepContext in, a StepOutcome out.
// This is everything a handler may see of the engine. A handler object is shared by all worker
// threads, so run() must be safe to call concurrently; the StepContext is per call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace chartflow {

using Json = nlohmann::json;
using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

// Outcomes are values: only broken invariants throw. A handler that throws is treated as Retry.
struct Completed {
  Json output = Json::object();
};
struct Retry {
  std::string reason;
  std::optional<Millis> after;  // default: the step's backoff policy
};
// A failed attempt, retried per the step's policy unless permanent.
struct Fail {
  std::string reason;  // stored and shown to operators: ids only, never chart content
  bool permanent = false;
};
struct WaitForSignal {
  std::string signal;
  std::optional<TimePoint> deadline;  // on expiry the handler runs again with Wake::kDeadline
};
struct WaitUntil {
  TimePoint at;
};
using StepOutcome = std::variant<Completed, Retry, Fail, WaitForSignal, WaitUntil>;

// Why a waiting step runs again.
struct Wake {
  enum class Kind { kTimer, kSignal, kDeadline };
  Kind kind = Kind::kTimer;
  std::string signal;
  Json payload;  // the signal's body
};

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// The step's own database transaction. Whatever a handler writes through it commits atomically with
// the step's completion, so a retried or re-run step never applies its side effect twice.
// Handlers write only their own tables, never the engine's.
class Sql {
 public:
  virtual ~Sql() = default;
  // Runs a parameterised statement ($1, $2, ...). Rows come back as JSON objects whose values are
  // the column text (or null).
  virtual Json query(std::string_view statement,
                     const std::vector<std::optional<std::string>>& params = {}) = 0;
};

class StepContext {
 public:
  virtual ~StepContext() = default;
  virtual std::int64_t run_id() const = 0;
  virtual const std::string& workflow() const = 0;
  virtual const std::string& step() const = 0;
  virtual int attempt() const = 0;
  // Stable across attempts and re-runs of this step of this run.
  virtual const std::string& idempotency_key() const = 0;
  virtual TimePoint deadline() const = 0;
  virtual std::int64_t event_id() const = 0;
  virtual const std::string& event_type() const = 0;
  virtual const Json& event() const = 0;   // event body
  virtual const Json& input() const = 0;   // the step's static input from the workflow file
  virtual const Json& needs() const = 0;   // {"step name": output} for each step it needs
  virtual const Json& config() const = 0;  // handler settings from the workflow file
  virtual const Wake* wake() const = 0;    // set when the step resumes after a wait
  virtual Sql& sql() = 0;
  // Writes that commit at once, on a connection of their own, whatever becomes of this attempt:
  // the record of an outside call (about to send, answered) that a retry, a crash or a reader
  // must see even though the step's transaction rolls back. fn's writes commit when it returns.
  // They must not touch rows the step's own transaction has written or locked (that would wait
  // on ourselves); keep such state in rows only the journal writes.
  virtual void journal(const std::function<void(Sql&)>& fn) = 0;
  virtual void log(LogLevel level, std::string_view message,
                   const Json& fields = Json::object()) = 0;
  // The W3C `traceparent` of this attempt ("00-<the run's trace id>-<the attempt's span id>-01")
  // for an outbound call to send, so the receiver's spans join the run's trace; "" when the run
  // has none (events stored before traces).
  virtual std::string traceparent() const { return {}; }
  // Set when this run reprocesses an earlier one (POST /v1/reprocess, issue #17 item 3): the
  // operator's flags {"job", "reprocess_of", "resend", "force", "reason"} that decide what a
  // handler does again of what the earlier run did; an empty object for any other run.
  virtual const Json& rerun() { return empty_rerun(); }

 protected:
  static const Json& empty_rerun() {
    static const Json kEmpty = Json::object();
    return kEmpty;
  }
};

// What a dry run of a reprocess asks a step's handler: would re-running this step for the run's
// event, with these flags, do anything outside the engine again?
struct RerunPreview {
  std::int64_t run_id = 0;  // the run that would be reprocessed
  std::string workflow, step;
  const Json* event = nullptr;   // its event body
  const Json* config = nullptr;  // the step's handler settings (workflow file)
  const Json* input = nullptr;   // the step's input (workflow file)
  Json flags = Json::object();   // {"resend", "force", "reason"}, as StepContext::rerun gives
};

// A signal a handler owns: it carries a decision the handler's module records itself (a doctor's
// review), so only the module's own route delivers it, under that route's Access rule; the
// generic POST /v1/runs/{id}/signal/{name} refuses it for every role. `route` names the way in
// for the refusal's message.
struct OwnedSignal {
  std::string name;
  std::string route;
};

// The bulkhead of handlers whose steps wait on calls over the network (insurers, bill
// receivers): the engine gives it workers of its own unless configured not to.
inline constexpr const char* kNetworkBulkhead = "network";

class Handler {
 public:
  virtual ~Handler() = default;
  virtual StepOutcome run(StepContext& ctx) = 0;
  // The signals of this handler's steps that no generic run signal may deliver.
  virtual std::vector<OwnedSignal> owned_signals() const { return {}; }
  // Checks the handler's settings in a workflow file; throws std::invalid_argument naming the
  // problem.
  virtual void validate(const Json& /*config*/) const {}
  // The pool of worker threads this handler's steps run in; "" is the general pool. A handler
  // that waits on the outside world (a network call that can hang until its timeout) names a
  // pool of its own, so its waits hold only that pool's few workers, never the threads every
  // other step needs (a bulkhead; sized by the engine's settings).
  virtual std::string bulkhead() const { return ""; }
  // For a reprocess's dry run: what a re-run of this step would do to the world outside the
  // engine, read (never written) through `sql`, as an array of
  // {"effect": "ledger", "action": "skip", "count": 3} entries (ids and counts only, no chart
  // content); nullopt: the handler has no side effects worth naming. Must agree with what run()
  // then does with StepContext::rerun() set to the same flags.
  virtual std::optional<Json> preview_rerun(Sql& /*sql*/, const RerunPreview& /*p*/) const {
    return std::nullopt;
  }
};

// Name -> handler. Filled at start-up, read-only afterwards.
class HandlerRegistry {
 public:
  void add(std::string name, std::shared_ptr<Handler> handler) {
    handlers_[std::move(name)] = std::move(handler);
  }
  Handler* find(const std::string& name) const {
    auto it = handlers_.find(name);
    return it == handlers_.end() ? nullptr : it->second.get();
  }
  bool contains(const std::string& name) const { return handlers_.count(name) != 0; }
  // The owner of signal `name` among the registered handlers, if one owns it.
  std::optional<OwnedSignal> signal_owner(const std::string& name) const {
    for (const auto& [_, h] : handlers_)
      for (auto& owned : h->owned_signals())
        if (owned.name == name) return owned;
    return std::nullopt;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, _] : handlers_) out.push_back(n);
    return out;
  }

 private:
  std::unordered_map<std::string, std::shared_ptr<Handler>> handlers_;
};

}  // namespace chartflow
