#include "auth/sessions.hpp"

#include "auth/secret.hpp"
#include "handlers/common/sql_util.hpp"

namespace chartflow::auth {
namespace {

using handlers::column_text;

constexpr const char* kSessionPrefix = "cfs_";
constexpr const char* kCsrfPrefix = "cfx_";
constexpr const char* kCodePrefix = "cfc_";

}  // namespace

NewSession open_session(Sql& sql, const Credential& who, std::chrono::seconds ttl) {
  NewSession s;
  s.id = random_secret(kSessionPrefix);
  s.csrf_token = random_secret(kCsrfPrefix);
  auto row = handlers::query_one(
      sql,
      "INSERT INTO web_session (id_hash, csrf_token, subject, name, role, assignee, expires_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::bigint)) RETURNING " +
          handlers::sql_iso("expires_at") + " AS expires_at",
      {secret_hash(s.id), s.csrf_token, who.subject, who.name, who.role, who.assignee,
       std::to_string(ttl.count())});
  s.expires_at = row ? column_text(*row, "expires_at").value_or("") : "";
  // Expired sessions are of no use to anyone: sweep a few on the way.
  sql.query(
      "DELETE FROM web_session WHERE id_hash IN (SELECT id_hash FROM web_session WHERE "
      "expires_at < now() - interval '1 day' LIMIT 100)");
  return s;
}

std::optional<Session> find_session(Sql& sql, const std::string& id) {
  auto row = row_for_secret(
      sql, id, kSessionPrefix,
      "SELECT subject, name, role, assignee, csrf_token, " + handlers::sql_iso("expires_at") +
          " AS expires_at FROM web_session WHERE id_hash = $1 AND ended_at IS NULL AND "
          "expires_at > now()");
  if (!row) return std::nullopt;
  return Session{
      Credential{column_text(*row, "subject").value_or(""), column_text(*row, "name").value_or(""),
                 column_text(*row, "role").value_or(""), column_text(*row, "assignee")},
      column_text(*row, "csrf_token").value_or(""), column_text(*row, "expires_at").value_or("")};
}

void end_session(Sql& sql, const std::string& id) {
  sql.query("UPDATE web_session SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL",
            {secret_hash(id)});
}

std::optional<std::string> first_start_code(Sql& sql) {
  if (handlers::query_one(sql,
                          "SELECT 1 WHERE EXISTS (SELECT 1 FROM api_token) OR EXISTS (SELECT 1 "
                          "FROM app_user) OR EXISTS (SELECT 1 FROM signin_code WHERE used_at IS "
                          "NOT NULL)"))
    return std::nullopt;
  sql.query("UPDATE signin_code SET expires_at = now() WHERE expires_at > now()");
  const std::string code = random_secret(kCodePrefix);
  sql.query(
      "INSERT INTO signin_code (code_hash, role, expires_at) VALUES ($1, 'admin', now() + "
      "make_interval(secs => $2::bigint))",
      {secret_hash(code),
       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kSigninCodeTtl).count())});
  return code;
}

std::optional<Credential> redeem_signin_code(Sql& sql, const std::string& code) {
  auto row = row_for_secret(
      sql, code, kCodePrefix,
      "UPDATE signin_code SET used_at = now() WHERE code_hash = $1 AND used_at IS NULL AND "
      "expires_at > now() RETURNING id, role");
  if (!row) return std::nullopt;
  return Credential{"signin-code:" + column_text(*row, "id").value_or(""), "first-admin",
                    column_text(*row, "role").value_or("admin"), std::nullopt};
}

}  // namespace chartflow::auth
