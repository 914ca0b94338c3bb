#include "engine/util/secret_box.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "engine/util/hash.hpp"

namespace chartflow::util {
namespace {

constexpr std::string_view kPrefix = "cfs1:";
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

std::string from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return {};
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("no random bytes from OpenSSL");
  return out;
}

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.pop_back();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.erase(0, 1);
  return s;
}

// Writes a new key into a temporary file of its own and links it into place: the file appears
// whole or not at all, so a second process starting at once reads the winner's key, never a
// half-written one. False when another process made the file first.
bool create_key_file(const std::filesystem::path& file) {
  const std::filesystem::path temporary = file.string() + ".new-" + to_hex(random_bytes(8));
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("secrets key file {}: cannot create it ({})", file.string(), strerror(errno)));
  const std::string text = to_hex(random_bytes(SecretBox::kKeyBytes)) + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                       ::fsync(fd) == 0;
  ::close(fd);
  if (!written) {
    std::filesystem::remove(temporary);
    throw std::runtime_error(fmt::format("secrets key file {}: cannot write it", file.string()));
  }
  const bool linked = ::link(temporary.c_str(), file.c_str()) == 0;
  const int link_errno = errno;
  std::filesystem::remove(temporary);
  if (linked) return true;
  if (link_errno == EEXIST) return false;
  throw std::runtime_error(fmt::format("secrets key file {}: cannot create it ({})", file.string(),
                                       strerror(link_errno)));
}

}  // namespace

SecretBox::SecretBox(std::string raw_key)
    : key_(std::move(raw_key)), key_id_(sha256_hex(key_).substr(0, 8)) {}

SecretBox SecretBox::from_key(std::string raw_key) {
  if (raw_key.size() != kKeyBytes)
    throw std::invalid_argument(fmt::format("a secrets key is {} bytes", kKeyBytes));
  return SecretBox(std::move(raw_key));
}

SecretBox SecretBox::load_or_create(const std::filesystem::path& file, bool* created) {
  const std::string where = "secrets key file " + file.string();
  if (created != nullptr) *created = false;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    if (errno != ENOENT) throw std::runtime_error(fmt::format("{}: {}", where, strerror(errno)));
    const bool made = create_key_file(file);
    if (created != nullptr) *created = made;
    if (::stat(file.c_str(), &st) != 0)
      throw std::runtime_error(fmt::format("{}: {}", where, strerror(errno)));
  }
  // The key opens every stored credential: like an ssh key, a file others may read is refused.
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    throw std::runtime_error(where + ": readable by group or others (chmod 600 it)");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw std::runtime_error(where + ": cannot read it");
  std::string raw = from_hex(trimmed(text.str()));
  if (raw.size() != kKeyBytes)
    throw std::runtime_error(fmt::format("{}: must hold {} hex digits (openssl rand -hex {})",
                                         where, 2 * kKeyBytes, kKeyBytes));
  return SecretBox(std::move(raw));
}

bool SecretBox::is_sealed(std::string_view value) { return value.rfind(kPrefix, 0) == 0; }

std::string SecretBox::seal(std::string_view plain, std::string_view context) const {
  const std::string nonce = random_bytes(kNonceBytes);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string out(plain.size(), '\0');
  std::string tag(kTagBytes, '\0');
  int len = 0;
  auto u = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  const bool ok =
      ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u(key_), u(nonce)) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), nullptr, &len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          tag.data()) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM sealing failed");
  return std::string(kPrefix) + key_id_ + ":" + to_hex(nonce + out + tag);
}

std::string SecretBox::open(std::string_view sealed, std::string_view context) const {
  if (!is_sealed(sealed)) throw SecretBoxError("not a sealed value");
  sealed.remove_prefix(kPrefix.size());
  const auto colon = sealed.find(':');
  if (colon == std::string_view::npos) throw SecretBoxError("not a sealed value");
  const std::string_view id = sealed.substr(0, colon);
  if (id != key_id_)
    throw SecretBoxError(fmt::format(
        "sealed under secrets key {}, this process has key {} (every process of a deployment "
        "needs the same --secrets-key-file)",
        id, key_id_));
  const std::string raw = from_hex(sealed.substr(colon + 1));
  if (raw.size() < kNonceBytes + kTagBytes) throw SecretBoxError("sealed value is damaged");
  const std::string nonce = raw.substr(0, kNonceBytes);
  const std::string body = raw.substr(kNonceBytes, raw.size() - kNonceBytes - kTagBytes);
  std::string tag = raw.substr(raw.size() - kTagBytes);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string out(body.size(), '\0');
  int len = 0;
  auto u = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  const bool ok =
      ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u(key_), u(nonce)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, u(body),
                        static_cast<int>(body.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), nullptr, &len) == 1;
  if (!ok) throw SecretBoxError("sealed value is damaged or belongs elsewhere");
  return out;
}

}  // namespace chartflow::util
