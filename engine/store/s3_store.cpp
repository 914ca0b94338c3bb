#include "store/s3_store.hpp"

#include <map>

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

void create_s3_upload(Sql& sql, const std::string& upload_id, const S3Upload& upload) {
  sql.query("DELETE FROM s3_multipart_upload WHERE created_at < now() - interval '1 day'");
  sql.query(
      "INSERT INTO s3_multipart_upload (upload_id, bucket, key, content_type, owner) "
      "VALUES ($1, $2, $3, $4, $5)",
      {upload_id, upload.bucket, upload.key, upload.content_type, upload.owner});
}

std::optional<S3Upload> get_s3_upload(Sql& sql, const std::string& upload_id) {
  const Json rows = sql.query(
      "SELECT bucket, key, content_type, owner FROM s3_multipart_upload WHERE upload_id = $1",
      {upload_id});
  if (rows.empty()) return std::nullopt;
  const Json& row = rows[0];
  return S3Upload{row.at("bucket").get<std::string>(), row.at("key").get<std::string>(),
                  row.at("content_type").get<std::string>(), row.at("owner").get<std::string>()};
}

std::uint64_t put_s3_part(Sql& sql, const std::string& upload_id, int part_number,
                          const std::string& etag, const std::string& content) {
  const Json rows = sql.query(
      "WITH part AS (INSERT INTO s3_multipart_part (upload_id, part_number, size, etag, content) "
      "VALUES ($1, $2::int, $3::bigint, $4, decode($5, 'hex')) ON CONFLICT (upload_id, "
      "part_number) DO UPDATE SET size = excluded.size, etag = excluded.etag, content = "
      "excluded.content RETURNING part_number, size) "
      "SELECT (SELECT size FROM part) + coalesce((SELECT sum(size) FROM s3_multipart_part WHERE "
      "upload_id = $1 AND part_number <> $2::int), 0) AS total",
      {upload_id, std::to_string(part_number), std::to_string(content.size()), etag,
       util::to_hex(content)});
  return std::stoull(rows.at(0).at("total").get<std::string>());
}

std::vector<std::optional<S3Part>> get_s3_parts(Sql& sql, const std::string& upload_id,
                                                const std::vector<int>& numbers) {
  std::string list;
  for (int n : numbers) list += (list.empty() ? "" : ",") + std::to_string(n);
  const Json rows = sql.query(
      "SELECT part_number, etag, encode(content, 'hex') AS hex FROM s3_multipart_part "
      "WHERE upload_id = $1 AND part_number = ANY($2::int[])",
      {upload_id, "{" + list + "}"});
  std::map<int, const Json*> by_number;
  for (const auto& row : rows)
    by_number[std::stoi(row.at("part_number").get<std::string>())] = &row;
  std::vector<std::optional<S3Part>> out;
  for (int n : numbers) {
    auto it = by_number.find(n);
    if (it == by_number.end()) {
      out.emplace_back(std::nullopt);
      continue;
    }
    out.emplace_back(S3Part{n, it->second->at("etag").get<std::string>(),
                            hex_decode(it->second->at("hex").get<std::string>())});
  }
  return out;
}

void delete_s3_upload(Sql& sql, const std::string& upload_id) {
  sql.query("DELETE FROM s3_multipart_upload WHERE upload_id = $1", {upload_id});
}

bool delete_s3_object(Sql& sql, const std::string& bucket, const std::string& key) {
  return !sql.query("DELETE FROM s3_object WHERE bucket = $1 AND key = $2 RETURNING key",
                    {bucket, key})
              .empty();
}

}  // namespace chartflow::store
