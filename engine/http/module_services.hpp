// The engine side of the module extension point (engine/module.hpp): EngineServices over a
// running Engine, and the binding of a module's routes and intake hooks to it.
#pragma once

#include <functional>

#include "engine/module.hpp"
#include "http/request_intake.hpp"
#include "http/router.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

class ModuleServices final : public EngineServices {
 public:
  ModuleServices(runtime::Engine& engine, metrics::Metrics* metrics)
      : engine_(engine), metrics_(metrics) {}

  IngestResult ingest(EventInput event, const BeforeIngest& before) override;
  CommandResult signal(std::int64_t run_id, const std::string& name, const Json& payload,
                       std::string* message, const std::function<bool(Sql&)>& before) override;
  Json runs_of_subject(const std::string& subject, int limit) override;
  std::vector<std::string> held_subjects() override;
  std::map<std::string, std::string> credential_names(
      const std::vector<std::string>& subjects) override;
  void transaction(const std::function<void(Sql&)>& fn) override;
  void read(const std::function<void(Sql&)>& fn) override;
  void audit(Sql& sql, const AuditEntry& entry) override;
  void audit_now(const AuditEntry& entry) override;
  void count_event(const std::string& type) override;
  void count_refusal(const AuditEntry& entry) override;
  std::optional<std::string> upload_limit_breach(std::string_view content) const override;

  // The limits the server's doors apply (set before the workers run; the defaults until then).
  void set_limits(const InputLimits& limits) { limits_ = limits; }

 private:
  runtime::Engine& engine_;
  metrics::Metrics* metrics_;
  InputLimits limits_;
};

// Adds every route the modules registered, bound to `services` (which must outlive the router
// and the engine's workers), and binds the modules' ServicesSlot to them.
void add_module_routes(Router& router, EngineServices& services, const ModuleRegistry& modules);

// A source's way into an intake hook, bound to the services; empty when no module registered a
// hook of that name.
using IntakeFn = std::function<IntakeResult(const IntakeRequest&)>;
IntakeFn bind_intake(EngineServices& services, const ModuleRegistry& modules,
                     const std::string& name);

// What a door that keeps intake content (S3) needs of a hook: the hook and who may read what it
// stored (nullptr: admin only).
struct BoundIntake {
  IntakeFn intake;
  SubjectAccess may_read;
};
BoundIntake bind_intake_with_access(EngineServices& services, const ModuleRegistry& modules,
                                    const std::string& name);

}  // namespace chartflow::http
