#include "store/auth_store.hpp"

#include "engine/util/sql_rows.hpp"

namespace chartflow::store {

bool live_token_named(Sql& sql, const std::string& name) {
  return util::query_one(sql, "SELECT 1 FROM api_token WHERE name = $1 AND revoked_at IS NULL",
                         {name})
      .has_value();
}

std::int64_t insert_token(Sql& sql, const std::string& name, const std::string& role,
                          const std::optional<std::string>& assignee, const std::string& token_hash,
                          const std::string& created_by,
                          const std::optional<std::string>& expires_in_seconds) {
  auto row = util::query_one(
      sql,
      "INSERT INTO api_token (name, role, assignee, token_hash, created_by, expires_at) "
      "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::bigint)) RETURNING id",
      {name, role, assignee, token_hash, created_by, expires_in_seconds});
  return row ? util::column_int(*row, "id").value_or(0) : 0;
}

std::optional<std::int64_t> revoke_token(Sql& sql, const std::string& name,
                                         const std::optional<std::string>& id) {
  auto row = util::query_one(sql,
                             "UPDATE api_token SET revoked_at = now() WHERE revoked_at IS NULL AND "
                             "(name = $1 OR id = $2::bigint) RETURNING id",
                             {name, id});
  if (!row) return std::nullopt;
  return util::column_int(*row, "id");
}

Json list_tokens(Sql& sql) {
  return util::query_rows(
      sql, "SELECT id, name, role, assignee, created_by, " + util::sql_iso("created_at") +
               " AS created_at, " + util::sql_iso("expires_at") + " AS expires_at, " +
               util::sql_iso("revoked_at") +
               " AS revoked_at, CASE WHEN revoked_at IS NOT NULL THEN 'revoked' "
               "WHEN expires_at <= now() THEN 'expired' ELSE 'live' END AS status "
               "FROM api_token ORDER BY id");
}

std::optional<CredentialRow> find_live_token(Sql& sql, const std::string& token_hash) {
  auto row = util::query_one(
      sql,
      "SELECT id, name, role, assignee FROM api_token WHERE token_hash = $1 AND revoked_at IS "
      "NULL AND (expires_at IS NULL OR expires_at > now())",
      {token_hash});
  if (!row) return std::nullopt;
  return CredentialRow{
      util::column_text(*row, "id").value_or(""), util::column_text(*row, "name").value_or(""),
      util::column_text(*row, "role").value_or(""), util::column_text(*row, "assignee")};
}

bool user_exists(Sql& sql, const std::string& name) {
  return util::query_one(sql, "SELECT 1 FROM app_user WHERE name = $1", {name}).has_value();
}

void insert_user(Sql& sql, const std::string& name, const std::string& role,
                 const std::optional<std::string>& assignee, const std::string& password_hash) {
  sql.query("INSERT INTO app_user (name, role, assignee, password_hash) VALUES ($1, $2, $3, $4)",
            {name, role, assignee, password_hash});
}

std::optional<UserRow> find_enabled_user(Sql& sql, const std::string& name) {
  auto row = util::query_one(
      sql,
      "SELECT name, role, assignee, password_hash FROM app_user WHERE name = $1 AND "
      "disabled_at IS NULL",
      {name});
  if (!row) return std::nullopt;
  return UserRow{util::column_text(*row, "role").value_or(""), util::column_text(*row, "assignee"),
                 util::column_text(*row, "password_hash")};
}

std::string insert_session(Sql& sql, const std::string& id_hash, const std::string& csrf_token,
                           const std::string& subject, const std::string& name,
                           const std::string& role, const std::optional<std::string>& assignee,
                           std::int64_t ttl_seconds) {
  auto row = util::query_one(
      sql,
      "INSERT INTO web_session (id_hash, csrf_token, subject, name, role, assignee, expires_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::bigint)) RETURNING " +
          util::sql_iso("expires_at") + " AS expires_at",
      {id_hash, csrf_token, subject, name, role, assignee, std::to_string(ttl_seconds)});
  return row ? util::column_text(*row, "expires_at").value_or("") : "";
}

void sweep_expired_sessions(Sql& sql) {
  sql.query(
      "DELETE FROM web_session WHERE id_hash IN (SELECT id_hash FROM web_session WHERE "
      "expires_at < now() - interval '1 day' LIMIT 100)");
}

std::optional<SessionRow> find_live_session(Sql& sql, const std::string& id_hash) {
  auto row = util::query_one(
      sql,
      "SELECT subject, name, role, assignee, csrf_token, " + util::sql_iso("expires_at") +
          " AS expires_at FROM web_session WHERE id_hash = $1 AND ended_at IS NULL AND "
          "expires_at > now()",
      {id_hash});
  if (!row) return std::nullopt;
  return SessionRow{util::column_text(*row, "subject").value_or(""),
                    util::column_text(*row, "name").value_or(""),
                    util::column_text(*row, "role").value_or(""),
                    util::column_text(*row, "assignee"),
                    util::column_text(*row, "csrf_token").value_or(""),
                    util::column_text(*row, "expires_at").value_or("")};
}

void end_session(Sql& sql, const std::string& id_hash) {
  sql.query("UPDATE web_session SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL",
            {id_hash});
}

bool any_credential(Sql& sql) {
  return util::query_one(sql,
                         "SELECT 1 WHERE EXISTS (SELECT 1 FROM api_token) OR EXISTS (SELECT 1 "
                         "FROM app_user) OR EXISTS (SELECT 1 FROM signin_code WHERE used_at IS "
                         "NOT NULL)")
      .has_value();
}

void expire_signin_codes(Sql& sql) {
  sql.query("UPDATE signin_code SET expires_at = now() WHERE expires_at > now()");
}

void insert_signin_code(Sql& sql, const std::string& code_hash, std::int64_t ttl_seconds) {
  sql.query(
      "INSERT INTO signin_code (code_hash, role, expires_at) VALUES ($1, 'admin', now() + "
      "make_interval(secs => $2::bigint))",
      {code_hash, std::to_string(ttl_seconds)});
}

std::optional<CredentialRow> redeem_signin_code(Sql& sql, const std::string& code_hash) {
  auto row = util::query_one(
      sql,
      "UPDATE signin_code SET used_at = now() WHERE code_hash = $1 AND used_at IS NULL AND "
      "expires_at > now() RETURNING id, role",
      {code_hash});
  if (!row) return std::nullopt;
  return CredentialRow{util::column_text(*row, "id").value_or(""), "",
                       util::column_text(*row, "role").value_or("admin"), std::nullopt};
}

SignInFailures recent_sign_in_failures(Sql& sql, const std::string& remote,
                                       const std::optional<std::string>& name, int window_minutes) {
  Json rows = sql.query(
      "SELECT count(*) FILTER (WHERE remote = $1) AS by_remote, "
      "count(*) FILTER (WHERE $2::text IS NOT NULL AND actor_name = $2) AS by_name "
      "FROM audit_event WHERE action = 'auth.signin' AND outcome = 'failure' "
      "AND at > now() - $3::int * interval '1 minute'",
      {remote, name, std::to_string(window_minutes)});
  auto number = [&](const char* key) {
    const Json& v = rows.at(0).at(key);
    return v.is_string() ? std::stoi(v.get<std::string>()) : v.get<int>();
  };
  return SignInFailures{number("by_remote"), number("by_name")};
}

}  // namespace chartflow::store
