// Secrets a module must keep and later send itself (a subscriber's header credential), sealed
// with AES-256-GCM under the deployment's key before they reach the database, so a dump, a
// backup or a replica does not carry them in clear. The key lives in a file outside the
// database (--secrets-key-file); every process of a deployment reads the same file.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace chartflow::util {

// Why a sealed value could not be opened, without the value: another key sealed it, or it was
// altered.
struct SecretBoxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class SecretBox {
 public:
  static constexpr std::size_t kKeyBytes = 32;

  // The key in `file` (64 hex digits). A missing file is made with a new random key, mode 0600,
  // exclusively (two processes starting at once end up with the same key), and `created` says
  // so. Throws std::runtime_error naming the file when it cannot be read or made, holds no key,
  // or is readable by group or others.
  static SecretBox load_or_create(const std::filesystem::path& file, bool* created = nullptr);
  // A box over `raw_key` (kKeyBytes bytes), for tests and tools.
  static SecretBox from_key(std::string raw_key);

  // "cfs1:<key id>:<hex of nonce, ciphertext, tag>". `context` (e.g. the table and column) is
  // bound as associated data: a value moved to another place does not open.
  std::string seal(std::string_view plain, std::string_view context) const;
  // Throws SecretBoxError when `sealed` was made under another key, under another context, or
  // was altered.
  std::string open(std::string_view sealed, std::string_view context) const;
  static bool is_sealed(std::string_view value);

  // The first 8 hex digits of the key's SHA-256: names the key in errors, never reveals it.
  const std::string& key_id() const { return key_id_; }

 private:
  explicit SecretBox(std::string raw_key);
  std::string key_;
  std::string key_id_;
};

}  // namespace chartflow::util
