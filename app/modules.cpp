#include "app/modules.hpp"

#include "handlers/chart_migrations.hpp"
#include "handlers/chart_module.hpp"
#include "runtime/handler_setup.hpp"
#include "runtime/log.hpp"

namespace chartflow::app {

std::unique_ptr<ModuleRegistry> make_modules(const std::filesystem::path& workflows_dir,
                                             runtime::external::PoolHooks hooks,
                                             handlers::ChartHandlerOptions chart) {
  auto modules = std::make_unique<ModuleRegistry>(
      runtime::make_handler_registry(workflows_dir, std::move(hooks)));
  if (!chart.warn)
    chart.warn = [](const std::string& warning) {
      runtime::Log::warn("settings_warning", Json{{"warning", warning}});
    };
  handlers::register_chart_module(*modules, workflows_dir, chart);
  return modules;
}

std::vector<MigrationSet> module_migrations() { return {handlers::chart_migrations()}; }

}  // namespace chartflow::app
