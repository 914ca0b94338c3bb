// The objects of the S3-compatible API (http/s3_routes.hpp), table s3_object: one row per
// (bucket, key), the content stored whole. Every function runs in the caller's transaction, so an
// object and the event announcing it commit together. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::store {

// Stores the object, replacing (and re-dating) one under the same bucket and key. `subject`: what
// the object became (a chart id), when its intake says.
void put_s3_object(Sql& sql, const std::string& bucket, const std::string& key,
                   const std::string& sha256, const std::string& etag,
                   const std::string& content_type, const std::string& content,
                   const std::optional<std::string>& subject = std::nullopt);

struct S3Object {
  std::uint64_t size = 0;
  std::string etag;  // MD5 hex
  std::string content_type;
  std::string modified;                // UTC, "YYYY-MM-DDTHH:MM:SS" (no fraction, no zone)
  std::optional<std::string> subject;  // see put_s3_object
  std::optional<std::string> content;  // only when asked for
};
std::optional<S3Object> get_s3_object(Sql& sql, const std::string& bucket, const std::string& key,
                                      bool with_content);

struct S3ListEntry {
  std::string key;
  std::string size;  // decimal
  std::string etag;
  std::string modified;  // RFC 3339 UTC with milliseconds
};
// Up to `limit` objects of the bucket whose keys start with `prefix` and sort (bytewise) after
// `after`, in that order.
std::vector<S3ListEntry> list_s3_objects(Sql& sql, const std::string& bucket,
                                         const std::string& after, const std::string& prefix,
                                         int limit);

// Multipart uploads (table s3_multipart_upload and its parts). Starting one also deletes those
// left unfinished for more than a day.
struct S3Upload {
  std::string bucket;
  std::string key;
  std::string content_type;
  std::string owner;
};
void create_s3_upload(Sql& sql, const std::string& upload_id, const S3Upload& upload);
std::optional<S3Upload> get_s3_upload(Sql& sql, const std::string& upload_id);
// Stores (or replaces) a part; returns the total size of the upload's parts with this one.
std::uint64_t put_s3_part(Sql& sql, const std::string& upload_id, int part_number,
                          const std::string& etag, const std::string& content);
struct S3Part {
  int number = 0;
  std::string etag;
  std::string content;
};
// The parts named, in the order given; nullopt names a part that is missing.
std::vector<std::optional<S3Part>> get_s3_parts(Sql& sql, const std::string& upload_id,
                                                const std::vector<int>& numbers);
void delete_s3_upload(Sql& sql, const std::string& upload_id);
// Whether an object was there to delete.
bool delete_s3_object(Sql& sql, const std::string& bucket, const std::string& key);

}  // namespace chartflow::store
