// The chartflow subcommands. Each returns the process exit code.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace chartflow::cli {

struct Args {
  std::map<std::string, std::string> options;
  std::vector<std::string> positional;
  // Every value of an option given more than once (`--map a=b --map c=d`), in order; `options`
  // keeps the last.
  std::map<std::string, std::vector<std::string>> repeated;

  std::optional<std::string> get(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end()) return std::nullopt;
    return it->second;
  }
  std::string get_or(const std::string& name, const std::string& def) const {
    return get(name).value_or(def);
  }
  int get_int(const std::string& name, int def) const;
};

// `--name value`, `--name=value` and `--flag` options, the rest positional, from argv[first].
Args parse_args(int argc, char** argv, int first);

struct Settings;
// `serve` and `worker` with the settings resolve_settings (app/settings.hpp) folded together.
int serve(const Settings& resolved, bool with_api);
int config(const Args& args);
int migrate(const Args& args);
int validate(const Args& args);
int logs(const Args& args);
int upload(const Args& args);
int workflows(const Args& args);
int runs(const Args& args);
int reprocess(const Args& args);
int retention(const Args& args);  // retention_commands.cpp
int holds(const Args& args);
int tokens(const Args& args);
int audit(const Args& args);
int users(const Args& args);
int backup(const Args& command_line);
int restore(const Args& args);

}  // namespace chartflow::cli
