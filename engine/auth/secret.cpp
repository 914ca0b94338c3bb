#include "auth/secret.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "engine/util/hash.hpp"

namespace chartflow::auth {

std::string random_secret(std::string_view prefix) {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    throw std::runtime_error("the random number generator failed");
  std::string out(prefix);
  out += util::to_hex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
  OPENSSL_cleanse(bytes, sizeof bytes);
  return out;
}

std::string secret_hash(std::string_view secret) { return util::sha256_hex(secret); }

bool plausible_secret(std::string_view secret, std::string_view prefix) {
  constexpr std::size_t kMaxSecretLength = 200;
  return secret.rfind(prefix, 0) == 0 && secret.size() <= kMaxSecretLength;
}

}  // namespace chartflow::auth
