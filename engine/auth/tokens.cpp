#include "auth/tokens.hpp"

#include <regex>
#include <stdexcept>

#include "auth/secret.hpp"
#include "engine/util/duration.hpp"
#include "store/auth_store.hpp"

namespace chartflow::auth {
namespace {

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
  if (store::live_token_named(sql, spec.name))
    throw std::invalid_argument("a live token named '" + spec.name + "' exists; revoke it first");
  CreatedToken out;
  out.token = random_secret(kTokenPrefix);
  std::optional<std::string> expires;
  if (spec.expires_in) expires = std::to_string(spec.expires_in->count());
  out.id = store::insert_token(sql, spec.name, spec.role,
                               spec.role == "reviewer" ? spec.assignee : std::nullopt,
                               secret_hash(out.token), spec.created_by, expires);
  return out;
}

std::optional<std::int64_t> revoke_token(Sql& sql, const std::string& id_or_name) {
  const bool numeric = !id_or_name.empty() && id_or_name.size() < 19 &&
                       id_or_name.find_first_not_of("0123456789") == std::string::npos;
  auto id = store::revoke_token(sql, id_or_name,
                                numeric ? std::optional<std::string>(id_or_name) : std::nullopt);
  // A session opened with the token ends with it.
  if (id) store::end_sessions_of(sql, "token:" + std::to_string(*id));
  return id;
}

Json list_tokens(Sql& sql) { return store::list_tokens(sql); }

std::optional<Credential> find_token(Sql& sql, const std::string& token) {
  if (!plausible_secret(token, kTokenPrefix)) return std::nullopt;
  auto row = store::find_live_token(sql, secret_hash(token));
  if (!row) return std::nullopt;
  return Credential{"token:" + row->id, row->name, row->role, row->assignee};
}

std::chrono::seconds parse_expiry(const std::string& text) {
  auto d = core::parse_duration(text);
  if (!d || *d < std::chrono::minutes(1))
    throw std::invalid_argument(
        "--expires must be a duration of at least 1m (30d, 12h, 90m), got '" + text + "'");
  return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

}  // namespace chartflow::auth
