#include "runtime/external/external_spec.hpp"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "engine/util/duration.hpp"

namespace chartflow::runtime::external {
namespace {

namespace fs = std::filesystem;

const std::set<std::string, std::less<>> kKeys = {
    "exec", "runtime",         "entry",      "timeout",  "memory", "concurrency",
    "env",  "max_invocations", "max_output", "min_warm", "name"};

// Handlers get a clean environment: the engine's own (database URL, credentials) is not theirs.
const char* const kInherited[] = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYENV_ROOT"};

bool valid_env_name(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

bool valid_identifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

int int_setting(const Json& config, const char* key, int def, int min) {
  if (!config.contains(key)) return def;
  const Json& v = config.at(key);
  if (!v.is_number_integer() || v.get<std::int64_t>() < min || v.get<std::int64_t>() > INT32_MAX)
    throw std::invalid_argument(fmt::format("{} must be a whole number >= {}", key, min));
  return v.get<int>();
}

std::uint64_t size_setting(const Json& config, const char* key, std::uint64_t def) {
  if (!config.contains(key)) return def;
  const Json& v = config.at(key);
  std::optional<std::uint64_t> n;
  if (v.is_number_unsigned()) n = v.get<std::uint64_t>();
  if (v.is_string()) n = parse_size(v.get<std::string>());
  if (!n || *n == 0)
    throw std::invalid_argument(
        fmt::format("{}: {} is not a size (use e.g. 512Mi, 1Gi or bytes)", key, v.dump()));
  return *n;
}

// "module.function" or "package.module.function"; the module file must exist so a typo stops
// the start-up instead of failing every run.
std::string python_entry(const Json& config, const fs::path& dir) {
  if (!config.contains("entry") || !config.at("entry").is_string())
    throw std::invalid_argument("runtime: python3 needs entry: module.function");
  const std::string entry = config.at("entry").get<std::string>();
  const auto dot = entry.rfind('.');
  bool ok = dot != std::string::npos && valid_identifier(entry.substr(dot + 1));
  std::string module_path;
  for (std::size_t start = 0; ok && dot != std::string::npos && start <= dot;) {
    const std::size_t end = entry.find('.', start);  // never npos: `dot` is still ahead
    ok = valid_identifier(std::string_view(entry).substr(start, end - start));
    module_path += (module_path.empty() ? "" : "/") + entry.substr(start, end - start);
    start = end + 1;
  }
  if (!ok)
    throw std::invalid_argument("entry '" + entry +
                                "' must be module.function (e.g. greet.lambda_handler)");
  std::error_code ec;
  if (!fs::is_regular_file(dir / (module_path + ".py"), ec) &&
      !fs::is_regular_file(dir / module_path / "__init__.py", ec))
    throw std::invalid_argument(
        fmt::format("entry '{}': no {}.py in {}", entry, module_path, dir.string()));
  return entry;
}

}  // namespace

std::optional<std::uint64_t> parse_size(const std::string& text) {
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (n > 1'000'000'000'000) return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(text[i++] - '0');
  }
  if (i == 0) return std::nullopt;
  static const std::pair<const char*, std::uint64_t> kUnits[] = {{"", 1},
                                                                 {"k", 1000},
                                                                 {"K", 1000},
                                                                 {"kB", 1000},
                                                                 {"KB", 1000},
                                                                 {"M", 1000000},
                                                                 {"MB", 1000000},
                                                                 {"G", 1000000000},
                                                                 {"GB", 1000000000},
                                                                 {"Ki", 1ULL << 10},
                                                                 {"KiB", 1ULL << 10},
                                                                 {"Mi", 1ULL << 20},
                                                                 {"MiB", 1ULL << 20},
                                                                 {"Gi", 1ULL << 30},
                                                                 {"GiB", 1ULL << 30}};
  const std::string_view unit = std::string_view(text).substr(i);
  for (const auto& [name, factor] : kUnits)
    if (unit == name) return n * factor;
  return std::nullopt;
}

std::string ExternalSpec::identity() const {
  std::string id = cwd.string();
  for (const auto& a : argv) id += '\x1f' + a;
  id += '\x1e';
  for (const auto& e : env) id += '\x1f' + e;
  return id + fmt::format("\x1e{}/{}/{}/{}/{}", memory_bytes, concurrency, min_warm,
                          max_invocations, max_output);
}

ExternalSpec parse_external_spec(const Json& config, const fs::path& workflows_dir,
                                 const PythonRuntime& python) {
  if (!config.is_object()) throw std::invalid_argument("handler settings must be a mapping");
  for (const auto& [key, _] : config.items())
    if (kKeys.count(key) == 0)
      throw std::invalid_argument(
          "unknown key '" + key +
          "'; allowed: exec, runtime, entry, timeout, memory, concurrency, env, min_warm, "
          "max_invocations, max_output, name");
  ExternalSpec spec;
  spec.cwd = workflows_dir;
  if (config.contains("exec")) {
    const Json& exec = config.at("exec");
    if (!exec.is_array() || exec.empty())
      throw std::invalid_argument("exec must be a non-empty list of strings");
    for (const auto& a : exec) {
      if (!a.is_string() || a.get<std::string>().empty())
        throw std::invalid_argument("exec must be a non-empty list of strings");
      spec.argv.push_back(a.get<std::string>());
    }
    if (config.contains("entry")) throw std::invalid_argument("entry belongs to runtime: python3");
    spec.name = fs::path(spec.argv.back()).filename().string();
  } else if (config.value("runtime", Json()) == "python3") {
    const std::string entry = python_entry(config, workflows_dir);
    spec.argv = {python.interpreter, "-c", python.adapter_source, entry};
    spec.name = entry;
  } else {
    throw std::invalid_argument("an external handler needs exec: [...] or runtime: python3");
  }
  if (config.contains("name")) {
    if (!config.at("name").is_string() || config.at("name").get<std::string>().empty())
      throw std::invalid_argument("name must be a non-empty string");
    spec.name = config.at("name").get<std::string>();
  }
  if (config.contains("timeout")) {
    const Json& t = config.at("timeout");
    const auto d = t.is_string() ? core::parse_duration(t.get<std::string>()) : std::nullopt;
    if (!d || d->count() <= 0)
      throw std::invalid_argument("timeout must be a duration such as 3s or 250ms");
    spec.timeout = *d;
  }
  spec.memory_bytes = size_setting(config, "memory", kDefaultMemory);
  spec.max_output = size_setting(config, "max_output", kDefaultMaxOutput);
  spec.concurrency = int_setting(config, "concurrency", kDefaultConcurrency, 1);
  spec.min_warm = std::min(int_setting(config, "min_warm", kDefaultMinWarm, 0), spec.concurrency);
  spec.max_invocations = int_setting(config, "max_invocations", kDefaultMaxInvocations, 1);

  for (const char* name : kInherited)
    if (const char* v = std::getenv(name)) spec.env.push_back(std::string(name) + "=" + v);
  spec.env.push_back("CHARTFLOW_HANDLER=" + spec.name);
  spec.env.push_back(fmt::format("CHARTFLOW_MEMORY_LIMIT_MB={}", spec.memory_bytes >> 20));
  if (config.contains("env")) {
    const Json& env = config.at("env");
    if (!env.is_object()) throw std::invalid_argument("env must be a mapping of NAME: value");
    for (const auto& [k, v] : env.items()) {
      if (!valid_env_name(k))
        throw std::invalid_argument("env: '" + k + "' is not a variable name");
      spec.env.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
    }
  }
  return spec;
}

RunAs resolve_run_as(const std::string& name) {
  if (geteuid() != 0)
    throw std::runtime_error("--handler-user " + name +
                             ": only a chartflow running as root can run handlers as another user");
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    throw std::runtime_error("--handler-user " + name + ": no such user");
  if (pw.pw_uid == 0) throw std::runtime_error("--handler-user " + name + " is root");
  return RunAs{name, pw.pw_uid, pw.pw_gid};
}

}  // namespace chartflow::runtime::external
