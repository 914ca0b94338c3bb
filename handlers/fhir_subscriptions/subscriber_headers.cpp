#include "handlers/fhir_subscriptions/subscriber_headers.hpp"

#include <openssl/rand.h>

#include <stdexcept>

#include "engine/util/sql_rows.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

// Bound into each seal with the subscription's id: a value copied into another row, column or
// table does not open (one subscription's credential cannot be sent to another's endpoint).
std::string context_of(const std::string& subscription_id) {
  return "fhir_out_subscription.sealed_headers:" + subscription_id;
}

constexpr const char* kSealLegacy =
    "UPDATE fhir_out_subscription SET sealed_headers = $2, headers = '[]' "
    "WHERE id = $1 AND sealed_headers IS NULL";

}  // namespace

std::optional<std::string> seal_header_lines(const util::SecretBox& box, const Json& lines,
                                             const std::string& subscription_id) {
  if (!lines.is_array() || lines.empty()) return std::nullopt;
  return box.seal(lines.dump(), context_of(subscription_id));
}

std::string open_header_lines(Sql& sql, const util::SecretBox& box, const Json& row) {
  const std::string id = util::column_text(row, "id").value_or("");
  if (auto sealed = util::column_text(row, "sealed_headers"))
    return box.open(*sealed, context_of(id));
  std::string plain = util::column_text(row, "headers").value_or("[]");
  const Json lines = Json::parse(plain);
  if (auto sealed = seal_header_lines(box, lines, id)) sql.query(kSealLegacy, {id, *sealed});
  return plain;
}

SecretsPtr ephemeral_secrets() {
  std::string key(util::SecretBox::kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1)
    throw std::runtime_error("no random bytes from OpenSSL");
  return std::make_shared<const util::SecretBox>(util::SecretBox::from_key(std::move(key)));
}

}  // namespace chartflow::handlers::fhir_subscriptions
