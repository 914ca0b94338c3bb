// Loading handler settings files (YAML; JSON is valid YAML) into JSON, and the small helpers the
// chart handlers share for reading step settings. Used at start-up and when a workflow is
// validated; no state.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "engine/handler.hpp"

namespace YAML {  // NOLINT(readability-identifier-naming): yaml-cpp's namespace
class Node;
}

namespace chartflow::handlers {

// Converts a YAML document to JSON by the workflow loader's rules (YAML 1.2 core schema: only
// true/false are booleans, quoted scalars stay strings); throws std::invalid_argument on
// duplicate or non-scalar keys.
Json yaml_to_json(const YAML::Node& node);
// Loads a YAML (or JSON) file; throws std::invalid_argument naming the file and the problem.
Json load_config_file(const std::filesystem::path& path);
// The line (1-based) in settings file `path` of the key a settings error names at its start, as
// from_json functions write them ("payors.acme.retry.max: must be ..."; a list item by its
// `name`); 0 when the message names no key or the file does not hold it.
int settings_error_line(const std::filesystem::path& path, std::string_view message);
// Expands ${VAR} and ${VAR:-default} from the environment ("" when unset and no default).
std::string expand_env(std::string_view text);

// A step setting: the step's input wins over its handler config; nullptr when neither has it.
const Json* step_setting(const StepContext& ctx, std::string_view key);
// The handler config overlaid with the step input (input wins), as one settings object.
Json merged_settings(const StepContext& ctx);
// A string setting of a settings object, or `fallback`; throws std::invalid_argument when the
// value is present but not a string.
std::string string_setting(const Json* settings_value, std::string_view key,
                           std::string_view fallback);
// A duration setting ("48h", "90m", or a number of seconds); throws std::invalid_argument naming
// `key` when unparsable or not positive.
std::chrono::milliseconds duration_setting(const Json* value, std::string_view key,
                                           std::chrono::milliseconds fallback);

}  // namespace chartflow::handlers
