#include "store/secret_redaction.hpp"

#include <algorithm>
#include <cctype>
#include <regex>

namespace chartflow::store {
namespace {

std::string percent_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

void replace_all(std::string& text, const std::string& secret) {
  if (secret.empty()) return;
  for (std::size_t pos = text.find(secret); pos != std::string::npos;
       pos = text.find(secret, pos + kRedacted.size()))
    text.replace(pos, secret.size(), kRedacted);
}

// URL user info: scheme://user:PASSWORD@ (the password may hold anything but '@' and '/').
const std::regex kUrlPassword(R"(([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s"']*:)[^@/\s"']*@)");
// password=VALUE, password = 'quoted value' (keyword form) or &password=VALUE (URI query).
const std::regex kPasswordParam(R"((password\s*=\s*)('(\\.|[^'\\])*'?|[^\s&'"]+))",
                                std::regex::icase);

}  // namespace

std::vector<std::string> dsn_passwords(std::string_view dsn) {
  std::vector<std::string> out;
  auto add = [&out](std::string_view raw) {
    if (raw.empty()) return;
    out.emplace_back(raw);
    const std::string decoded = percent_decode(raw);
    if (decoded != raw) out.push_back(decoded);
  };
  const auto scheme = dsn.find("://");
  if (scheme != std::string_view::npos) {
    const auto rest = dsn.substr(scheme + 3);
    const auto at = rest.substr(0, rest.find_first_of("/?")).rfind('@');
    if (at != std::string_view::npos) {
      const auto userinfo = rest.substr(0, at);
      if (const auto colon = userinfo.find(':'); colon != std::string_view::npos)
        add(userinfo.substr(colon + 1));
    }
  }
  const std::string text(dsn);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kPasswordParam);
       it != std::sregex_iterator(); ++it) {
    std::string value = (*it)[2].str();
    if (value.size() >= 2 && value.front() == '\'') {
      add(value);
      value = value.substr(1, value.size() - (value.back() == '\'' ? 2 : 1));
      std::string unescaped;
      for (std::size_t i = 0; i < value.size(); ++i)
        if (value[i] != '\\' || ++i < value.size()) unescaped += value[i];
      if (unescaped != value) add(unescaped);
    }
    add(value);
  }
  return out;
}

std::string redact_secrets(std::string message, std::string_view dsn) {
  auto secrets = dsn_passwords(dsn);
  // Longest first, so a password containing another is not left half-replaced.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& s : secrets) replace_all(message, s);
  message = std::regex_replace(message, kUrlPassword, "$1" + std::string(kRedacted) + "@");
  message = std::regex_replace(message, kPasswordParam, "$1" + std::string(kRedacted));
  return message;
}

}  // namespace chartflow::store
