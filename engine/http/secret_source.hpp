// The YAML config files of the event sources (webhook secrets, S3 keys), and the secrets in
// them, given as exactly one of `secret: ...`, `secret_file: PATH` (content, trailing newline
// dropped) or `secret_env: NAME`.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <string>

namespace chartflow::http {

inline constexpr std::size_t kMinSecretLength = 16;

// Parses `file`; throws std::runtime_error "FILE: problem" when it cannot.
YAML::Node load_config_file(const std::filesystem::path& file);

// Throws std::runtime_error prefixed with `where` when the node gives none or several sources,
// a source cannot be read, or the secret is shorter than kMinSecretLength.
std::string load_secret(const YAML::Node& node, const std::string& where);

}  // namespace chartflow::http
