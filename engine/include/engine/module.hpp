// How an application module (the chart application is one) plugs into the engine: it adds step
// handlers, HTTP routes with their Access rule, intake hooks and its own migrations to a
// ModuleRegistry at start-up, and reaches the running engine only through EngineServices. The
// engine knows nothing of a module beyond what it registers here.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/audit.hpp"
#include "engine/events.hpp"
#include "engine/handler.hpp"
#include "engine/http.hpp"
#include "engine/migration.hpp"

namespace chartflow {

// What a module may ask of the running engine. Every call is thread-safe and takes a pooled
// database session for its duration.
class EngineServices {
 public:
  virtual ~EngineServices() = default;

  // Stores the event and starts the runs whose triggers match, in one transaction. `before` runs
  // first in that transaction (a source storing its own rows with the event); it may fill in the
  // event, and returns false to store nothing (the result is then a duplicate).
  using BeforeIngest = std::function<bool(Sql&, EventInput&)>;
  virtual IngestResult ingest(EventInput event, const BeforeIngest& before = {}) = 0;

  // Delivers signal `name` to the run's step waiting for it. `before` runs first in the same
  // transaction (e.g. recording the decision the signal carries) and may refuse by returning
  // false: nothing is then written.
  enum class CommandResult { kOk, kNotFound, kConflict };
  virtual CommandResult signal(std::int64_t run_id, const std::string& name, const Json& payload,
                               std::string* message,
                               const std::function<bool(Sql&)>& before = {}) = 0;

  // The runs started for a subject (e.g. a chart id), newest first, as GET /v1/runs lists them.
  virtual Json runs_of_subject(const std::string& subject, int limit) = 0;

  // The names of the credentials that `subjects` (IntakeRequest::uploader, a principal's id)
  // stand for, so a record can show "nurse-tablet-7" rather than "token:7"; subjects of no
  // credential (a source's name) are left out.
  virtual std::map<std::string, std::string> credential_names(
      const std::vector<std::string>& subjects) = 0;

  // A transaction on the module's own tables: committed when `fn` returns, rolled back when it
  // throws.
  virtual void transaction(const std::function<void(Sql&)>& fn) = 0;
  // Statements that each commit by themselves, for a single read where BEGIN and COMMIT would be
  // two of three round trips.
  virtual void read(const std::function<void(Sql&)>& fn) = 0;

  // Writes an audit record in the caller's transaction, so neither exists without the other.
  virtual void audit(Sql& sql, const AuditEntry& entry) = 0;
  // Writes one in a transaction of its own (refusals and failures, whose action left no
  // transaction to write it in). A failure to write is logged, never thrown.
  virtual void audit_now(const AuditEntry& entry) = 0;

  // Counts an event accepted by a module's own route in the engine's metrics.
  virtual void count_event(const std::string& type) = 0;

  // A refused attempt of a caller who did not authenticate (a wrong shared secret): counted per
  // (action, outcome, remote, minute) as the engine's own doors count theirs, not a record each,
  // so a sender retrying with a stale secret cannot flood the audit trail. Never throws.
  virtual void count_refusal(const AuditEntry& entry) = 0;

  // The subjects (chart ids) under legal hold (chartflow holds, /v1/holds): whatever a module
  // expires of its own must keep theirs, as the engine keeps their runs.
  virtual std::vector<std::string> held_subjects() = 0;

  // Why `content` that a module takes in a way of its own (a Bundle a step read from an EHR)
  // breaks the limits every door holds uploads to (--upload-limit, --json-depth-limit,
  // --bundle-entry-limit), or nullopt when it is within them.
  virtual std::optional<std::string> upload_limit_breach(std::string_view content) const = 0;
};

// Where a module's handlers reach the running engine's services, for a step that must do what a
// route does (store events of its own, as a recovery step does with what it fetched). Bound when
// the module's routes are added to the server; until then get() is nullptr and such a step
// retries. The services outlive the engine's workers (the engine drains before they go).
class ServicesSlot {
 public:
  void bind(EngineServices* services) { services_.store(services, std::memory_order_release); }
  EngineServices* get() const { return services_.load(std::memory_order_acquire); }

 private:
  std::atomic<EngineServices*> services_{nullptr};
};

// A route of a module: like an engine route, with the services it may use.
using ModuleRouteHandler = std::function<http::Response(EngineServices&, http::Request&)>;
struct ModuleRoute {
  std::string method, pattern, name;
  http::Access access;
  ModuleRouteHandler handler;
};

// An intake hook: what a source (an S3 bucket, the drop folder, a module route) does with the
// content it received, ending in an event stored through EngineServices::ingest. `also` writes
// the source's own record (e.g. the S3 object) in that same transaction, duplicate or not, and
// learns the subject (e.g. the chart id) the content became.
struct IntakeRequest {
  std::string content;
  std::string uploader;  // the credential's stable id, or the source's name
  std::string source;    // "upload", "s3", "drop"
  std::function<void(Sql&, const std::string& subject)> also;
};
struct IntakeResult {
  bool duplicate = false;  // identical content came before: nothing was stored
  IngestResult event;
  Json summary = Json::object();  // what the source may report back (ids, never content)
};
// Thrown by an intake hook for content it cannot accept: `status` is the HTTP status an API
// answers with, `message` names the problem (never patient data).
struct IntakeRejected {
  int status;
  std::string message;
};
using IntakeHook = std::function<IntakeResult(EngineServices&, const IntakeRequest&)>;
// Whether `who` may read content an intake turned into `subject` (an S3 object of a chart bucket
// is read as the chart is), decided in the read's transaction.
using SubjectAccess =
    std::function<bool(Sql&, const std::string& subject, const http::Principal& who)>;

// Filled by each module's register function at start-up, read-only afterwards.
class ModuleRegistry {
 public:
  explicit ModuleRegistry(std::shared_ptr<HandlerRegistry> handlers)
      : handlers_(std::move(handlers)), services_(std::make_shared<ServicesSlot>()) {}

  // For handlers to keep: filled when the routes are bound (see ServicesSlot).
  const std::shared_ptr<ServicesSlot>& services() const { return services_; }

  HandlerRegistry& handlers() { return *handlers_; }
  const std::shared_ptr<HandlerRegistry>& handler_registry() const { return handlers_; }

  void add_route(std::string method, std::string pattern, std::string name, http::Access access,
                 ModuleRouteHandler handler) {
    routes_.push_back({std::move(method), std::move(pattern), std::move(name), std::move(access),
                       std::move(handler)});
  }
  const std::vector<ModuleRoute>& routes() const { return routes_; }

  // Sources name the hook they feed (an S3 chart bucket and the drop folder's top level use
  // "chart").
  // `may_read` decides reads of what the hook stored; without one only admin reads it.
  void add_intake(std::string name, IntakeHook hook, SubjectAccess may_read = nullptr) {
    read_access_[name] = std::move(may_read);
    intakes_[std::move(name)] = std::move(hook);
  }
  const IntakeHook* intake(const std::string& name) const {
    auto it = intakes_.find(name);
    return it == intakes_.end() ? nullptr : &it->second;
  }
  const SubjectAccess* read_access(const std::string& name) const {
    auto it = read_access_.find(name);
    return it == read_access_.end() || !it->second ? nullptr : &it->second;
  }

  // Event types the module emits itself (its intake's events): no door from outside may create
  // them, so handlers may trust their bodies. A type, or a prefix ending in ".*".
  void reserve_event_type(std::string pattern) { reserved_.push_back(std::move(pattern)); }
  const std::vector<std::string>& reserved_event_types() const { return reserved_; }

  // Applied after the engine's own, in registration order.
  void add_migrations(MigrationSet set) { migrations_.push_back(std::move(set)); }
  const std::vector<MigrationSet>& migrations() const { return migrations_; }

 private:
  std::shared_ptr<HandlerRegistry> handlers_;
  std::shared_ptr<ServicesSlot> services_;
  std::vector<ModuleRoute> routes_;
  std::map<std::string, IntakeHook> intakes_;
  std::map<std::string, SubjectAccess> read_access_;
  std::vector<MigrationSet> migrations_;
  std::vector<std::string> reserved_;
};

}  // namespace chartflow
