#include "auth/tokens.hpp"

#include <regex>
#include <stdexcept>

#include "auth/secret.hpp"
#include "core/duration.hpp"
#include "handlers/common/sql_util.hpp"

namespace chartflow::auth {
namespace {

using handlers::column_int;
using handlers::column_text;

const std::regex kCredentialName("^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$");

}  // namespace

const std::vector<std::string>& role_names() {
  static const std::vector<std::string> kRoles = {"uploader", "reviewer", "billing", "operator",
                                                  "admin"};
  return kRoles;
}

bool valid_role(const std::string& role) {
  for (const auto& r : role_names())
    if (r == role) return true;
  return false;
}

CreatedToken create_token(Sql& sql, const TokenSpec& spec) {
  if (!valid_role(spec.role))
    throw std::invalid_argument("role must be one of uploader, reviewer, billing, operator, admin");
  if (!std::regex_match(spec.name, kCredentialName))
    throw std::invalid_argument(
        "name must be 1-100 characters of letters, digits, . _ @ - starting with a letter or "
        "digit");
  if (spec.role == "reviewer" && (!spec.assignee || spec.assignee->empty()))
    throw std::invalid_argument(
        "a reviewer token needs --assignee: the practitioner it acts as (e.g. Practitioner/123)");
  if (spec.assignee && (spec.assignee->empty() || spec.assignee->size() > 300))
    throw std::invalid_argument("assignee must be 1-300 characters");
  if (handlers::query_one(sql, "SELECT 1 FROM api_token WHERE name = $1 AND revoked_at IS NULL",
                          {spec.name}))
    throw std::invalid_argument("a live token named '" + spec.name + "' exists; revoke it first");
  CreatedToken out;
  out.token = random_secret(kTokenPrefix);
  std::optional<std::string> expires;
  if (spec.expires_in) expires = std::to_string(spec.expires_in->count());
  auto row = handlers::query_one(
      sql,
      "INSERT INTO api_token (name, role, assignee, token_hash, created_by, expires_at) "
      "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::bigint)) RETURNING id",
      {spec.name, spec.role, spec.role == "reviewer" ? spec.assignee : std::nullopt,
       secret_hash(out.token), spec.created_by, expires});
  out.id = row ? column_int(*row, "id").value_or(0) : 0;
  return out;
}

std::optional<std::int64_t> revoke_token(Sql& sql, const std::string& id_or_name) {
  const bool numeric = !id_or_name.empty() && id_or_name.size() < 19 &&
                       id_or_name.find_first_not_of("0123456789") == std::string::npos;
  auto row = handlers::query_one(
      sql,
      "UPDATE api_token SET revoked_at = now() WHERE revoked_at IS NULL AND "
      "(name = $1 OR id = $2::bigint) RETURNING id",
      {id_or_name, numeric ? std::optional<std::string>(id_or_name) : std::nullopt});
  if (!row) return std::nullopt;
  return column_int(*row, "id");
}

Json list_tokens(Sql& sql) {
  return handlers::query_rows(
      sql, "SELECT id, name, role, assignee, created_by, " + handlers::sql_iso("created_at") +
               " AS created_at, " + handlers::sql_iso("expires_at") + " AS expires_at, " +
               handlers::sql_iso("revoked_at") +
               " AS revoked_at, CASE WHEN revoked_at IS NOT NULL THEN 'revoked' "
               "WHEN expires_at <= now() THEN 'expired' ELSE 'live' END AS status "
               "FROM api_token ORDER BY id");
}

std::optional<Json> row_for_secret(Sql& sql, const std::string& secret, std::string_view prefix,
                                   const std::string& statement) {
  constexpr std::size_t kMaxSecretLength = 200;
  if (secret.rfind(prefix, 0) != 0 || secret.size() > kMaxSecretLength) return std::nullopt;
  return handlers::query_one(sql, statement, {secret_hash(secret)});
}

std::optional<Credential> find_token(Sql& sql, const std::string& token) {
  auto row = row_for_secret(
      sql, token, kTokenPrefix,
      "SELECT id, name, role, assignee FROM api_token WHERE token_hash = $1 AND revoked_at IS "
      "NULL AND (expires_at IS NULL OR expires_at > now())");
  if (!row) return std::nullopt;
  return Credential{"token:" + column_text(*row, "id").value_or(""),
                    column_text(*row, "name").value_or(""), column_text(*row, "role").value_or(""),
                    column_text(*row, "assignee")};
}

std::chrono::seconds parse_expiry(const std::string& text) {
  auto d = core::parse_duration(text);
  if (!d || *d < std::chrono::minutes(1))
    throw std::invalid_argument(
        "--expires must be a duration of at least 1m (30d, 12h, 90m), got '" + text + "'");
  return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

}  // namespace chartflow::auth
