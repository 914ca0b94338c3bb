#include "app/settings.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "app/options.hpp"
#include "config/workflow_validation.hpp"
#include "engine/util/install_prefix.hpp"

namespace chartflow::cli {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> env_value(std::string_view option) {
  if (const char* v = std::getenv(env_name(option).c_str()); v && *v) return std::string(v);
  return std::nullopt;
}

// " (did you mean 'upload-limit'?)" for a mistyped key or flag.
std::string suggestion(std::string_view name) {
  std::vector<std::string_view> names;
  for (const auto& o : server_options()) names.push_back(o.name);
  return config::did_you_mean(name, names);
}

struct FileValue {
  std::string value;
  int line = 0;
};

// The config file's settings, each checked for its key and kind. Keys of options the other
// command reads are accepted (serve and worker share a file) and returned too.
std::map<std::string, FileValue> read_config_file(const fs::path& file) {
  const std::string name = file.string();
  std::ifstream probe(file);
  if (!probe) throw SettingsError(name + ": cannot read the config file");
  YAML::Node root;
  try {
    root = YAML::LoadFile(name);
  } catch (const YAML::ParserException& e) {
    throw SettingsError(name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  std::map<std::string, FileValue> out;
  if (root.IsNull()) return out;  // an empty file: nothing set
  if (!root.IsMap())
    throw SettingsError(name + ":" + std::to_string(root.Mark().line + 1) +
                        ": the config file must be a mapping of settings (listen: ..., ...)");
  // retention: {runs: 400d, logs: 30d, archive-after: 30d} stands for retention-runs and the
  // rest: the classes read as one setting.
  struct Entry {
    std::string key;
    int line;
    YAML::Node value;
  };
  std::vector<Entry> entries;
  for (const auto& entry : root) {
    const auto key = entry.first.as<std::string>();
    if (key == "retention" && entry.second.IsMap()) {
      for (const auto& sub : entry.second)
        entries.push_back(
            {"retention-" + sub.first.as<std::string>(), sub.first.Mark().line + 1, sub.second});
      continue;
    }
    entries.push_back({key, entry.first.Mark().line + 1, entry.second});
  }
  for (const auto& entry : entries) {
    const auto& key = entry.key;
    const int line = entry.line;
    const std::string where = name + ":" + std::to_string(line) + ": ";
    const OptionSpec* spec = find_option(key);
    if (spec == nullptr || key == "config")
      throw SettingsError(std::string(where)
                              .append("unknown setting '")
                              .append(key)
                              .append("'")
                              .append(suggestion(key)));
    if (!entry.value.IsScalar())
      throw SettingsError(where + key + " must be a single value, not a list or mapping");
    std::string value = entry.value.Scalar();
    if (spec->kind == OptionKind::kFlag && (value == "yes" || value == "on")) value = "true";
    if (spec->kind == OptionKind::kFlag && (value == "no" || value == "off")) value = "false";
    if (auto bad = check_value(*spec, value)) throw SettingsError(where + key + " " + *bad);
    out[key] = {value, line};
  }
  return out;
}

}  // namespace

std::optional<fs::path> installed_config_path() {
  const auto prefix = util::install_prefix();
  if (!prefix) return std::nullopt;
  const fs::path etc = *prefix == "/usr" ? fs::path("/etc") : *prefix / "etc";
  return etc / "chartflow" / "chartflow.yaml";
}

namespace {

std::optional<fs::path> config_file_of(const Args& command_line) {
  if (auto named = command_line.get("config")) return fs::path(*named);
  if (auto from_env = env_value("config")) return fs::path(*from_env);
  if (auto installed = installed_config_path(); installed && fs::exists(*installed))
    return installed;
  return std::nullopt;
}

// Folds flags, variables and the file's values of the options `wanted` accepts into `out`. The
// options of a group come from one source only, the strongest that sets any of them: a
// --database-url-file flag must not lose to a CHARTFLOW_DATABASE_URL variable.
template <typename Wanted>
void fold(Settings& out, const Args& command_line, Wanted wanted) {
  out.file = config_file_of(command_line);
  std::map<std::string, FileValue> file_values;
  if (out.file) file_values = read_config_file(*out.file);
  enum Level { kNone, kFile, kEnv, kFlag };
  std::map<std::string_view, Level> group_level;
  for (const auto& o : server_options()) {
    if (o.group.empty() || !wanted(o)) continue;
    Level level = kNone;
    if (command_line.get(std::string(o.name)))
      level = kFlag;
    else if (env_value(o.name))
      level = kEnv;
    else if (file_values.count(std::string(o.name)) != 0)
      level = kFile;
    group_level[o.group] = std::max(group_level[o.group], level);
  }
  for (const auto& o : server_options()) {
    if (!wanted(o) || o.name == "config") continue;
    const std::string name(o.name);
    const Level only = o.group.empty() ? kNone : group_level[o.group];
    std::optional<std::string> value;
    std::string source;
    if (auto flag = command_line.get(name); flag && (only == kNone || only == kFlag)) {
      value = flag;
      source = "flag";
    } else if (auto env = env_value(o.name); env && (only == kNone || only == kEnv)) {
      if (auto bad = check_value(o, *env)) throw SettingsError(env_name(o.name) + " " + *bad);
      value = env;
      source = env_name(o.name);
    } else if (auto it = file_values.find(name);
               it != file_values.end() && (only == kNone || only == kFile)) {
      value = it->second.value;
      source = out.file->string() + ":" + std::to_string(it->second.line);
    }
    if (!value) continue;
    // A flag that is off is absent: the server asks only whether it is there.
    if (o.kind == OptionKind::kFlag && *value == "false") continue;
    out.args.options[name] = *value;
    out.source[name] = source;
  }
}

}  // namespace

Settings resolve_settings(const Args& command_line, bool with_api) {
  const unsigned use = with_api ? kServe : kWorker;
  const char* command = with_api ? "serve" : "worker";
  if (!command_line.positional.empty())
    throw SettingsError(std::string(command) + " takes no arguments, got '" +
                        command_line.positional.front() + "'");
  for (const auto& [name, value] : command_line.options) {
    const OptionSpec* spec = find_option(name);
    if (spec == nullptr)
      throw SettingsError("unknown option --" + name + suggestion(name) + "; chartflow " + command +
                          " --help lists them");
    if ((spec->use & use) == 0)
      throw SettingsError("--" + name + " is not an option of chartflow " + command);
    if (auto bad = check_value(*spec, value)) throw SettingsError("--" + name + " " + *bad);
  }
  Settings out;
  fold(out, command_line, [use](const OptionSpec& o) { return (o.use & use) != 0; });
  return out;
}

std::string locate(const Settings& settings, const std::string& message) {
  if (message.rfind("--", 0) != 0) return message;
  const auto end = message.find_first_of(" ,:", 2);
  const std::string name =
      message.substr(2, end == std::string::npos ? std::string::npos : end - 2);
  auto it = settings.source.find(name);
  if (it == settings.source.end() || it->second == "flag") return message;
  const std::string rest = end == std::string::npos ? "" : message.substr(end);
  if (it->second.rfind("CHARTFLOW_", 0) == 0) return it->second + rest;
  return it->second + ": " + name + rest;
}

Args with_database_settings(const Args& command_line) {
  Settings out;
  out.args = command_line;
  fold(out, command_line, [](const OptionSpec& o) {
    return o.group == "database" || o.name == "data-dir" || o.name == "wal-archive";
  });
  return out.args;
}

}  // namespace chartflow::cli
