#include "runtime/handler_setup.hpp"

#include "runtime/builtin_handlers.hpp"
#include "runtime/external/external_handler.hpp"

namespace chartflow::runtime {

std::shared_ptr<HandlerRegistry> make_handler_registry(const std::filesystem::path& workflows_dir,
                                                       external::PoolHooks hooks) {
  auto registry = std::make_shared<HandlerRegistry>();
  runtime::register_builtin_handlers(*registry);
  register_external_handlers(*registry, workflows_dir, std::move(hooks));
  return registry;
}

void register_external_handlers(HandlerRegistry& registry,
                                const std::filesystem::path& workflows_dir,
                                external::PoolHooks hooks) {
  // A relative folder would change meaning if anything changed the working directory.
  std::error_code ec;
  auto dir = std::filesystem::absolute(workflows_dir, ec);
  auto handler = std::make_shared<external::ExternalHandler>(external::ExternalSettings{
      ec ? workflows_dir : dir, external::default_python_runtime(), std::move(hooks)});
  registry.add("exec", handler);
  registry.add("python3", handler);
}

void prewarm_external_handlers(const HandlerRegistry& registry,
                               const std::vector<core::Workflow>& workflows) {
  for (const auto& wf : workflows)
    for (const auto& step : wf.steps)
      if (step.handler.name == "exec" || step.handler.name == "python3")
        if (auto* h = dynamic_cast<external::ExternalHandler*>(registry.find(step.handler.name)))
          h->prewarm(step.handler.config);
}

config::HandlerCheck handler_check(const HandlerRegistry& registry) {
  config::HandlerCheck check;
  check.exists = [&registry](const std::string& name) { return registry.contains(name); };
  check.validate = [&registry](const std::string& name, const Json& config) {
    if (auto* h = registry.find(name)) h->validate(config);
  };
  return check;
}

}  // namespace chartflow::runtime
