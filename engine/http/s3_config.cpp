#include "http/s3_config.hpp"

#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>

#include "http/secret_source.hpp"

namespace chartflow::http {
namespace {

const std::regex kBucket("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$");
// First path segments the engine itself serves.
const std::set<std::string> kReserved = {"v1", "ui", "healthz", "readyz", "metrics"};

}  // namespace

std::optional<std::string> bucket_name_problem(const std::string& name) {
  if (!std::regex_match(name, kBucket))
    return "bucket names are 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with "
           "a letter or digit";
  if (kReserved.count(name)) return "bucket name '" + name + "' is reserved for the engine's API";
  return std::nullopt;
}

S3Config S3Config::load(const std::filesystem::path& file) {
  const std::string where = file.string() + ": ";
  const YAML::Node root = load_config_file(file);
  S3Config out;
  const auto keys = root["access_keys"];
  const auto buckets = root["buckets"];
  if (!keys || !keys.IsSequence() || keys.size() == 0)
    throw std::runtime_error(where + "access_keys must be a non-empty list");
  if (!buckets || !buckets.IsMap() || buckets.size() == 0)
    throw std::runtime_error(where +
                             "buckets must be a non-empty mapping of name to {chart: bool}");
  for (const auto& k : keys) {
    const std::string at = where + "line " + std::to_string(k.Mark().line + 1) + ": ";
    if (!k.IsMap() || !k["access_key"])
      throw std::runtime_error(at + "each access key needs access_key and a secret");
    S3AccessKey key;
    key.secret = load_secret(k, at);
    const std::string role = k["role"] ? k["role"].as<std::string>() : "uploader";
    auto parsed = parse_role(role);
    if (!parsed) throw std::runtime_error(at + "unknown role '" + role + "'");
    key.role = *parsed;
    // A reviewer key reads the charts of its practitioner's reviews, as a reviewer token does.
    if (k["assignee"]) key.assignee = k["assignee"].as<std::string>();
    if (key.role == Role::kReviewer && (!key.assignee || key.assignee->empty()))
      throw std::runtime_error(at + "a reviewer key needs an assignee (e.g. Practitioner/123)");
    out.keys[k["access_key"].as<std::string>()] = key;
  }
  for (const auto& b : buckets) {
    const std::string name = b.first.as<std::string>();
    if (auto problem = bucket_name_problem(name))
      throw std::runtime_error(where + "bucket " + name + ": " + *problem);
    out.buckets[name] = b.second.IsMap() && b.second["chart"] && b.second["chart"].as<bool>();
  }
  return out;
}

const S3AccessKey* S3Config::key(const std::string& id) const {
  auto it = keys.find(id);
  return it == keys.end() ? nullptr : &it->second;
}

std::optional<bool> S3Config::bucket(const std::string& name) const {
  auto it = buckets.find(name);
  if (it == buckets.end()) return std::nullopt;
  return it->second;
}

}  // namespace chartflow::http
