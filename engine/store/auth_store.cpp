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

std::map<std::string, std::string> credential_names(Sql& sql,
                                                    const std::vector<std::string>& subjects) {
  std::map<std::string, std::string> out;
  std::string token_ids;
  for (const auto& subject : subjects) {
    if (subject.rfind("user:", 0) == 0 && subject.size() > 5) {
      out[subject] = subject.substr(5);  // a user's subject is its name
      continue;
    }
    if (subject.rfind("s3:", 0) == 0 && subject.size() > 3) {
      out[subject] = subject.substr(3);  // an S3 key is named by its access key id
      continue;
    }
    if (subject.rfind("token:", 0) != 0) continue;
    const std::string id = subject.substr(6);
    if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos)
      continue;
    token_ids += (token_ids.empty() ? "" : ",") + id;
  }
  if (token_ids.empty()) return out;
  const Json rows = sql.query("SELECT id, name FROM api_token WHERE id = ANY($1::bigint[])",
                              {"{" + token_ids + "}"});
  for (const auto& row : rows)
    out["token:" + row.at("id").get<std::string>()] = row.at("name").get<std::string>();
  return out;
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

bool set_user_disabled(Sql& sql, const std::string& name, bool disabled) {
  return util::query_one(sql,
                         disabled ? "UPDATE app_user SET disabled_at = now() WHERE name = $1 AND "
                                    "disabled_at IS NULL RETURNING name"
                                  : "UPDATE app_user SET disabled_at = NULL WHERE name = $1 AND "
                                    "disabled_at IS NOT NULL RETURNING name",
                         {name})
      .has_value();
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

std::optional<SessionRow> find_live_session(Sql& sql, const std::string& id_hash,
                                            std::int64_t idle_seconds) {
  // One statement: the lookup, the credential's liveness (a revoked or expired token, a
  // disabled or removed user end the sessions opened with them) and, when it is a few seconds
  // old, the note that the session was used.
  auto row = util::query_one(
      sql,
      "WITH s AS (SELECT w.id_hash, w.subject, w.name, w.role, w.assignee, w.csrf_token, "
      "w.expires_at, w.last_seen_at FROM web_session w WHERE w.id_hash = $1 AND w.ended_at IS "
      "NULL AND w.expires_at > now() "
      "AND w.last_seen_at > now() - make_interval(secs => $2::bigint) AND CASE "
      "WHEN w.subject LIKE 'token:%' THEN EXISTS (SELECT 1 FROM api_token t WHERE t.id::text = "
      "substr(w.subject, 7) AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > "
      "now())) "
      "WHEN w.subject LIKE 'user:%' THEN EXISTS (SELECT 1 FROM app_user u WHERE u.name = "
      "substr(w.subject, 6) AND u.disabled_at IS NULL) "
      "ELSE true END), "
      "touch AS (UPDATE web_session w SET last_seen_at = now() FROM s WHERE w.id_hash = s.id_hash "
      "AND s.last_seen_at < now() - interval '5 seconds' RETURNING 1) "
      "SELECT subject, name, role, assignee, csrf_token, " +
          util::sql_iso("expires_at") + " AS expires_at FROM s",
      {id_hash, std::to_string(idle_seconds)});
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

int end_sessions_of(Sql& sql, const std::string& subject) {
  return static_cast<int>(
      util::query_rows(sql,
                       "UPDATE web_session SET ended_at = now() WHERE subject = $1 AND ended_at IS "
                       "NULL RETURNING 1",
                       {subject})
          .size());
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
      "expires_at > now() AND NOT EXISTS (SELECT 1 FROM api_token WHERE role = 'admin') AND "
      "NOT EXISTS (SELECT 1 FROM app_user WHERE role = 'admin') RETURNING id, role",
      {code_hash});
  if (!row) return std::nullopt;
  return CredentialRow{util::column_text(*row, "id").value_or(""), "",
                       util::column_text(*row, "role").value_or("admin"), std::nullopt};
}

SignInFailures sign_in_failures(Sql& sql, const std::string& name, const std::string& remote,
                                int window_seconds) {
  auto row = util::query_one(
      sql,
      "SELECT coalesce(sum(failures) FILTER (WHERE name = $1), 0) AS pair, "
      "coalesce(extract(epoch FROM now() - max(last_failure_at) FILTER (WHERE name = $1)), 0) "
      "AS pair_age, coalesce(sum(failures), 0) AS remote, "
      "coalesce(extract(epoch FROM now() - max(last_failure_at)), 0) AS remote_age "
      "FROM signin_failure WHERE remote = $2 "
      "AND last_failure_at > now() - make_interval(secs => $3::bigint)",
      {name, remote, std::to_string(window_seconds)});
  SignInFailures out;
  if (!row) return out;
  out.pair = static_cast<int>(util::column_int(*row, "pair").value_or(0));
  out.remote = static_cast<int>(util::column_int(*row, "remote").value_or(0));
  out.pair_age = std::stod(util::column_text(*row, "pair_age").value_or("0"));
  out.remote_age = std::stod(util::column_text(*row, "remote_age").value_or("0"));
  return out;
}

void record_sign_in_failure(Sql& sql, const std::string& name, const std::string& remote,
                            int window_seconds) {
  sql.query(
      "INSERT INTO signin_failure AS f (name, remote, failures, last_failure_at) "
      "VALUES ($1, $2, 1, now()) ON CONFLICT (name, remote) DO UPDATE SET "
      "failures = CASE WHEN f.last_failure_at > now() - make_interval(secs => $3::bigint) "
      "THEN f.failures + 1 ELSE 1 END, last_failure_at = now()",
      {name, remote, std::to_string(window_seconds)});
  sql.query(
      "DELETE FROM signin_failure WHERE (name, remote) IN (SELECT name, remote FROM "
      "signin_failure WHERE last_failure_at < now() - interval '1 day' LIMIT 100)");
}

void clear_sign_in_failures(Sql& sql, const std::string& name, const std::string& remote) {
  sql.query("DELETE FROM signin_failure WHERE name = $1 AND remote = $2", {name, remote});
}

}  // namespace chartflow::store
