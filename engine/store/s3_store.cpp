#include "store/s3_store.hpp"

#include "engine/util/hash.hpp"

namespace chartflow::store {
namespace {

std::string hex_decode(const std::string& hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  auto v = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(v(hex[i]) * 16 + v(hex[i + 1]));
  return out;
}

}  // namespace

void put_s3_object(Sql& sql, const std::string& bucket, const std::string& key,
                   const std::string& sha256, const std::string& etag,
                   const std::string& content_type, const std::string& content,
                   const std::optional<std::string>& subject) {
  sql.query(
      "INSERT INTO s3_object (bucket, key, size, sha256, etag, content_type, content, subject) "
      "VALUES ($1, $2, $3::bigint, $4, $5, $6, decode($7, 'hex'), $8) ON CONFLICT (bucket, key) "
      "DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, etag = excluded.etag, "
      "content_type = excluded.content_type, content = excluded.content, "
      "subject = excluded.subject, created_at = now()",
      {bucket, key, std::to_string(content.size()), sha256, etag, content_type,
       util::to_hex(content), subject});
}

std::optional<S3Object> get_s3_object(Sql& sql, const std::string& bucket, const std::string& key,
                                      bool with_content) {
  const Json rows = sql.query(
      std::string(
          "SELECT size, etag, content_type, subject, to_char(created_at AT TIME ZONE 'UTC', "
          "'YYYY-MM-DD\"T\"HH24:MI:SS') AS at") +
          (with_content ? ", encode(content, 'hex') AS hex" : "") +
          " FROM s3_object WHERE bucket = $1 AND key = $2",
      {bucket, key});
  if (rows.empty()) return std::nullopt;
  const Json& row = rows[0];
  S3Object out;
  out.size = std::stoull(row.at("size").get<std::string>());
  out.etag = row.at("etag").get<std::string>();
  out.content_type = row.at("content_type").get<std::string>();
  out.modified = row.at("at").get<std::string>();
  if (row.at("subject").is_string()) out.subject = row.at("subject").get<std::string>();
  if (with_content) out.content = hex_decode(row.at("hex").get<std::string>());
  return out;
}

std::vector<S3ListEntry> list_s3_objects(Sql& sql, const std::string& bucket,
                                         const std::string& after, const std::string& prefix,
                                         int limit) {
  const Json rows = sql.query(
      "SELECT key, size, etag, to_char(created_at AT TIME ZONE 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at FROM s3_object WHERE bucket = $1 AND "
      "key COLLATE \"C\" > $2 AND left(key, length($3)) = $3 ORDER BY key COLLATE \"C\" "
      "LIMIT $4::int",
      {bucket, after, prefix, std::to_string(limit)});
  std::vector<S3ListEntry> out;
  for (const auto& row : rows)
    out.push_back(S3ListEntry{row.at("key").get<std::string>(), row.at("size").get<std::string>(),
                              row.at("etag").get<std::string>(), row.at("at").get<std::string>()});
  return out;
}

}  // namespace chartflow::store
