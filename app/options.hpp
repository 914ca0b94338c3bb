// Every setting of `serve` and `worker` in one table: the flag, the CHARTFLOW_* variable, the key
// in chartflow.yaml, the usage line and `config show` all come from it, so a new option cannot
// be settable one way and missing from another.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chartflow::cli {

enum class OptionKind {
  kText,      // any string
  kPath,      // a file or directory
  kInteger,   // a whole number
  kSize,      // bytes, with an optional K, M or G suffix
  kDuration,  // 30s, 5m, 48h, 30d
  kFlag,      // on when present (true/false in the config file)
};

// Which commands read an option.
enum OptionUse : unsigned { kServe = 1, kWorker = 2, kBoth = kServe | kWorker };

struct OptionSpec {
  std::string_view name;  // the flag without "--", also the config file key
  OptionKind kind;
  std::string_view placeholder;  // for the usage line, e.g. HOST:PORT
  std::string_view help;
  std::string_view fallback;  // what applies when nothing sets it, as `config show` prints it
  unsigned use = kServe;
  // Options of one group stand in for each other (--database-url and --database-url-file): a
  // flag or variable for any of them hides the config file's values for all of them.
  std::string_view group = {};
  bool secret = false;  // shown redacted by `config show`
};

const std::vector<OptionSpec>& server_options();
const OptionSpec* find_option(std::string_view name);

// CHARTFLOW_ + the name in upper case with '-' as '_': --upload-limit is CHARTFLOW_UPLOAD_LIMIT.
std::string env_name(std::string_view option);

// The usage of `serve` or `worker` (with_api false): every option the command reads.
std::string server_usage(bool with_api);

// Checks a value against its kind; the message names what was expected, not where.
std::optional<std::string> check_value(const OptionSpec& spec, const std::string& value);

// A database URL with its password replaced by "***", for `config show`.
std::string redact_url(const std::string& url);

}  // namespace chartflow::cli
