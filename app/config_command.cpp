// `chartflow config check|show|get`: the settings `serve` would run with, checked or printed
// without starting anything.
#include <iostream>

#include "app/commands.hpp"
#include "app/modules.hpp"
#include "app/options.hpp"
#include "app/server_options.hpp"
#include "app/settings.hpp"
#include "app/startup_checks.hpp"
#include "config/workflow_loader.hpp"
#include "runtime/handler_setup.hpp"

namespace chartflow::cli {
namespace {

// What serve checks before it touches a database (the same function), each failure located, then
// the workflow files.
int check(const Settings& settings) {
  const Args& args = settings.args;
  try {
    (void)check_startup(args, /*with_api=*/true);
  } catch (const std::exception& e) {
    std::cerr << locate(settings, e.what()) << "\n";
    return 1;
  }
  const std::filesystem::path workflows = args.get_or("workflows", "./workflows");
  auto modules = app::make_modules(workflows);
  auto loaded = config::load_workflow_dir(workflows, runtime::handler_check(modules->handlers()));
  for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
  if (!loaded.errors.empty()) return 1;
  std::cout << (settings.file ? settings.file->string() : std::string("(no config file)"))
            << ": ok; " << loaded.workflows.size() << " workflow(s) in " << workflows.string()
            << "\n";
  return 0;
}

// The effective settings as a config file: set ones with their source, the rest commented out
// with their default. The database URL's password never appears.
int show(const Settings& settings) {
  std::cout << "# chartflow serve settings"
            << (settings.file ? " (config file " + settings.file->string() + ")" : "") << "\n";
  for (const auto& o : server_options()) {
    if ((o.use & kServe) == 0 || o.name == "config") continue;
    const std::string name(o.name);
    if (auto v = settings.args.get(name)) {
      const std::string value = o.secret ? redact_url(*v) : *v;
      std::cout << name << ": " << nlohmann::json(value).dump() << "  # "
                << settings.source.at(name) << "\n";
    } else {
      std::cout << "# " << name << ": " << (o.fallback.empty() ? "(unset)" : o.fallback)
                << "  # default\n";
    }
  }
  return 0;
}

// One effective value, or the default when it is a literal, for scripts (the systemd unit's
// readiness probe asks for listen and tls-cert).
int get(const Settings& settings, const std::string& name) {
  const OptionSpec* spec = find_option(name);
  if (spec == nullptr || name == "config") {
    std::cerr << "unknown setting '" << name << "'\n";
    return 2;
  }
  if (auto v = settings.args.get(name))
    std::cout << (spec->secret ? redact_url(*v) : *v) << "\n";
  else
    std::cout << spec->fallback << "\n";
  return 0;
}

}  // namespace

int config(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub != "check" && sub != "show" && !(sub == "get" && args.positional.size() == 2))
    throw std::invalid_argument("usage: chartflow config check|show|get NAME [serve options]");
  Args rest = args;
  rest.positional.erase(rest.positional.begin());
  std::string name;
  if (sub == "get") {
    name = rest.positional.front();
    rest.positional.clear();
  }
  Settings settings;
  try {
    settings = resolve_settings(rest, /*with_api=*/true);
  } catch (const SettingsError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  if (sub == "get") return get(settings, name);
  return sub == "check" ? check(settings) : show(settings);
}

}  // namespace chartflow::cli
