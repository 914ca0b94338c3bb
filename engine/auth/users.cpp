#include "auth/users.hpp"

#include <argon2.h>
#include <openssl/rand.h>

#include <regex>
#include <stdexcept>

#include "auth/secret.hpp"
#include "store/auth_store.hpp"

namespace chartflow::auth {
namespace {

constexpr std::uint32_t kTimeCost = 2;
constexpr std::uint32_t kMemoryKiB = 19456;
constexpr std::uint32_t kParallelism = 1;
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
constexpr std::size_t kMinPasswordLength = 12;

const std::regex kUserName("^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$");

}  // namespace

std::string hash_password(const std::string& password) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1)
    throw std::runtime_error("the random number generator failed");
  std::string encoded(
      argon2_encodedlen(kTimeCost, kMemoryKiB, kParallelism, kSaltBytes, kHashBytes, Argon2_id),
      '\0');
  const int rc =
      argon2id_hash_encoded(kTimeCost, kMemoryKiB, kParallelism, password.data(), password.size(),
                            salt, kSaltBytes, kHashBytes, encoded.data(), encoded.size());
  if (rc != ARGON2_OK)
    throw std::runtime_error(std::string("argon2id failed: ") + argon2_error_message(rc));
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool verify_password(const std::string& encoded, const std::string& password) {
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

void create_user(Sql& sql, const std::string& name, const std::string& role,
                 const std::optional<std::string>& assignee, const std::string& password) {
  if (!valid_role(role))
    throw std::invalid_argument("role must be one of uploader, reviewer, billing, operator, admin");
  if (!std::regex_match(name, kUserName))
    throw std::invalid_argument(
        "name must be 1-100 characters of letters, digits, . _ @ - starting with a letter or "
        "digit");
  if (role == "reviewer" && (!assignee || assignee->empty()))
    throw std::invalid_argument("a reviewer needs --assignee: the practitioner they are");
  if (password.size() < kMinPasswordLength)
    throw std::invalid_argument("the password must have at least 12 characters");
  if (store::user_exists(sql, name)) throw std::invalid_argument("user '" + name + "' exists");
  store::insert_user(sql, name, role, role == "reviewer" ? assignee : std::nullopt,
                     hash_password(password));
}

bool set_user_enabled(Sql& sql, const std::string& name, bool enabled) {
  const bool changed = store::set_user_disabled(sql, name, !enabled);
  if (!enabled) store::end_sessions_of(sql, "user:" + name);
  return changed;
}

std::optional<Credential> check_password(Sql& sql, const std::string& name,
                                         const std::string& password) {
  // Hashed once per process: what an unknown name is checked against, so it costs the same.
  static const std::string kDecoy = hash_password(random_secret(""));
  auto row = store::find_enabled_user(sql, name);
  const std::string encoded = row && row->password_hash ? *row->password_hash : kDecoy;
  const bool ok = verify_password(encoded, password);
  if (!row || !ok) return std::nullopt;
  return Credential{"user:" + name, name, row->role, row->assignee};
}

}  // namespace chartflow::auth
