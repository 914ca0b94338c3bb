// The effective settings of `serve` and `worker`: the config file, then CHARTFLOW_* variables,
// then flags, each overriding the one before, checked once at start. `config check` and
// `config show` print what this resolves.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "app/commands.hpp"

namespace chartflow::cli {

// A setting that cannot apply; the message starts with "FILE:LINE: " when the file is at fault.
class SettingsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Settings {
  Args args;                                  // what serve/worker read, all sources folded in
  std::map<std::string, std::string> source;  // option -> "flag", "CHARTFLOW_X" or "FILE:LINE"
  std::optional<std::filesystem::path> file;  // the config file read, if any
};

// The config file when neither --config nor CHARTFLOW_CONFIG names one: for a binary installed
// as PREFIX/bin/chartflow, PREFIX/etc/chartflow/chartflow.yaml (/etc/chartflow/chartflow.yaml for
// /usr), read only if it exists. A binary in a build tree has none.
std::optional<std::filesystem::path> installed_config_path();

// Folds the config file and the environment into the command line's options. Throws
// SettingsError for an unknown flag or key, a value of the wrong kind or an unreadable file.
Settings resolve_settings(const Args& command_line, bool with_api);

// A startup error about "--name ..." said where that setting came from: "FILE:LINE: name ..."
// for the config file, "CHARTFLOW_NAME ..." for a variable; other messages unchanged.
std::string locate(const Settings& settings, const std::string& message);

// For the one-shot commands (tokens, users, audit, migrate): the command line with the database
// settings (--database-url, --database-url-file, --data-dir) of the config file and variables
// folded in, so they find the cluster of the `serve` that the same file configures.
Args with_database_settings(const Args& command_line);

}  // namespace chartflow::cli
