#include "runtime/handler_setup.hpp"

#include "handlers/builtin/builtin_handlers.hpp"
#include "handlers/register_chart_handlers.hpp"

namespace chartflow::runtime {

std::shared_ptr<HandlerRegistry> make_handler_registry(const std::filesystem::path& workflows_dir) {
  auto registry = std::make_shared<HandlerRegistry>();
  handlers::register_builtin_handlers(*registry);
  handlers::register_chart_handlers(*registry, workflows_dir);
  return registry;
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
