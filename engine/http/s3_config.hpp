// Configuration of the S3-compatible API: access keys (with the role each acts as) and buckets
// (chart buckets store each object as a chart revision). Loaded once at start-up from YAML;
// read-only afterwards (thread-safe).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "http/router.hpp"

namespace chartflow::http {

struct S3AccessKey {
  std::string secret;
  Role role = Role::kUploader;
  std::optional<std::string> assignee;  // reviewer keys: the practitioner, as on a token
};

struct S3Config {
  std::map<std::string, S3AccessKey> keys;  // by access key id
  std::map<std::string, bool> buckets;      // name -> is a chart bucket

  // Throws std::runtime_error naming the file, line and problem.
  static S3Config load(const std::filesystem::path& file);
  const S3AccessKey* key(const std::string& id) const;
  std::optional<bool> bucket(const std::string& name) const;
};

// S3 bucket naming rules, minus the names the engine's own routes use.
std::optional<std::string> bucket_name_problem(const std::string& name);

}  // namespace chartflow::http
