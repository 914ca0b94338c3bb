#include "http/secret_source.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace chartflow::http {

YAML::Node load_config_file(const std::filesystem::path& file) {
  try {
    return YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

std::string load_secret(const YAML::Node& node, const std::string& where) {
  int sources = 0;
  std::string secret;
  if (node["secret"]) {
    secret = node["secret"].as<std::string>();
    ++sources;
  }
  if (node["secret_file"]) {
    const std::string path = node["secret_file"].as<std::string>();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(where + "cannot read secret file " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    secret = ss.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    ++sources;
  }
  if (node["secret_env"]) {
    const std::string name = node["secret_env"].as<std::string>();
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0')
      throw std::runtime_error(where + "environment variable " + name + " is not set");
    secret = value;
    ++sources;
  }
  if (sources != 1)
    throw std::runtime_error(where + "give exactly one of secret, secret_file, secret_env");
  if (secret.size() < kMinSecretLength)
    throw std::runtime_error(where + "the secret must be at least " +
                             std::to_string(kMinSecretLength) + " characters");
  return secret;
}

}  // namespace chartflow::http
