#include "http/s3_routes.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <functional>
#include <map>
#include <set>

#include "auth/audit.hpp"
#include "auth/secret.hpp"
#include "core/input_limits.hpp"
#include "engine/util/hash.hpp"
#include "http/audit_context.hpp"
#include "http/hmac.hpp"
#include "http/s3_auth.hpp"
#include "http/sigv4.hpp"
#include "runtime/drop_folder.hpp"
#include "store/s3_store.hpp"

namespace chartflow::http {

namespace {

constexpr const char* kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr int kMaxListKeys = 1000;

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Response xml(int status, const std::string& body) {
  Response r;
  r.status = status;
  r.content_type = "application/xml";
  r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + body;
  return r;
}

Response error_response(const S3Error& e, const std::string& resource) {
  return xml(e.status, "<Error><Code>" + e.code + "</Code><Message>" + xml_escape(e.message) +
                           "</Message><Resource>" + xml_escape(resource) + "</Resource></Error>");
}

std::string md5_hex(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_md5(), nullptr);
  return util::to_hex(std::string(reinterpret_cast<const char*>(out), len));
}

// The 16 bytes of an MD5 hex string (a part's ETag, which we computed ourselves).
std::string bytes_of_hex(const std::string& hex) {
  std::string out;
  auto v = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(v(hex[i]) * 16 + v(hex[i + 1]));
  return out;
}

std::string http_date(const std::string& rfc3339) {
  // "2026-11-27T09:12:30Z" -> "Fri, 27 Nov 2026 09:12:30 GMT"
  std::tm tm{};
  strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// An audit record of an S3 request in the caller's transaction (the actor: the access key).
void audit(Sql& sql, const Request& req, const std::string& action, const std::string& bucket,
           const std::string& key) {
  auth::record(sql, audit_entry(req, action, "s3_object", bucket + "/" + key));
}

// A refused request, in a transaction of its own, then the S3 error.
[[noreturn]] void refuse(runtime::Engine& engine, const Request& req, const std::string& action,
                         const std::string& resource, const std::string& why) {
  auto entry = audit_entry(req, action, "s3_object", resource);
  entry.outcome = "denied";
  audit_now(engine, entry);
  throw S3Error{403, "AccessDenied", why};
}

void require(runtime::Engine& engine, const Request& req, const std::string& action,
             const std::string& resource, const Principal& p, std::initializer_list<Role> roles) {
  if (!Access::of(roles).allows(p.role))
    refuse(engine, req, action, resource,
           std::string("role ") + role_name(p.role) + " may not do this");
}

// Chart buckets follow PUT /v1/charts (uploader); other buckets also take operators' files.
void require_writer(runtime::Engine& engine, const Request& req, const std::string& action,
                    const std::string& resource, bool chart_bucket, const Principal& who) {
  if (chart_bucket)
    require(engine, req, action, resource, who, {Role::kUploader});
  else
    require(engine, req, action, resource, who, {Role::kUploader, Role::kOperator});
}

// What a put or a completed multipart upload stores: the bytes, the ETag clients check (a
// multipart object's is S3's "MD5 of the parts' MD5s-N") and what else commits with it.
struct NewObject {
  const std::string& body;
  std::string etag;
  std::string content_type;
  std::function<void(Sql&)> also;
};

// A chart bucket's object is a chart upload (validated, stored as a revision, chart.uploaded);
// any other bucket's emits object.created. The object, its event and its audit record commit
// together.
Response store_new_object(Request& req, runtime::Engine& engine, const S3Intake& charts,
                          const std::string& bucket, bool chart_bucket, const std::string& key,
                          const Principal& who, const NewObject& object) {
  const std::string sha = util::to_hex(util::sha256_raw(object.body));
  auto store_object = [&](Sql& sql, const std::optional<std::string>& subject) {
    audit(sql, req, "s3.put", bucket, key);
    store::put_s3_object(sql, bucket, key, sha, object.etag, object.content_type, object.body,
                         subject);
    if (object.also) object.also(sql);
  };
  if (chart_bucket) {
    if (!charts.intake)
      throw S3Error{501, "NotImplemented", "this server has no chart intake for chart buckets"};
    try {
      charts.intake(
          IntakeRequest{object.body, who.id, "s3",
                        [&](Sql& sql, const std::string& subject) { store_object(sql, subject); }});
    } catch (const IntakeRejected& e) {
      throw S3Error{400, "InvalidArgument", "not an acceptable chart: " + e.message};
    }
  } else {
    store::EventInput ev;
    ev.type = runtime::kObjectCreatedEvent;
    ev.source = "s3";
    ev.dedup_key = bucket + "/" + key + "@" + sha;
    ev.body = {{"bucket", bucket},
               {"key", key},
               {"size", object.body.size()},
               {"sha256", sha},
               {"content_type", object.content_type}};
    engine.ingest(ev, [&](Sql& sql, store::EventInput&) {
      store_object(sql, std::nullopt);
      return true;
    });
  }
  Response r = xml(200, "");
  r.body.clear();
  r.headers.emplace_back("ETag", "\"" + object.etag + "\"");
  return r;
}

Response put_object(Request& req, runtime::Engine& engine, const S3Intake& charts,
                    const std::string& bucket, bool chart_bucket, const std::string& key,
                    const Principal& who) {
  require_writer(engine, req, "s3.put", bucket + "/" + key, chart_bucket, who);
  return store_new_object(
      req, engine, charts, bucket, chart_bucket, key, who,
      {req.body, md5_hex(req.body), req.header("content-type").value_or("application/octet-stream"),
       nullptr});
}

// A chart bucket's objects are medical records: only admin deletes them (the chart revision an
// upload became stays either way); other buckets' objects operators too. Deleting a key that is
// not there succeeds, as in S3.
Response delete_object(Request& req, runtime::Engine& engine, const std::string& bucket,
                       bool chart_bucket, const std::string& key, const Principal& who) {
  const std::string resource = bucket + "/" + key;
  if (chart_bucket)
    require(engine, req, "s3.delete", resource, who, {});
  else
    require(engine, req, "s3.delete", resource, who, {Role::kOperator});
  engine.transaction([&](Sql& sql) {
    audit(sql, req, "s3.delete", bucket, key);
    store::delete_s3_object(sql, bucket, key);
  });
  Response r;
  r.status = 204;
  return r;
}

// --- Multipart uploads: create, parts, complete, abort. ------------------------------------

// The upload `uploadId` names, for this bucket and key, started by this access key (or any,
// for admin); anything else is NoSuchUpload or AccessDenied, audited.
store::S3Upload find_upload(Request& req, runtime::Engine& engine, const std::string& action,
                            const std::string& upload_id, const std::string& bucket,
                            const std::string& key, const Principal& who) {
  std::optional<store::S3Upload> upload;
  engine.read([&](Sql& sql) { upload = store::get_s3_upload(sql, upload_id); });
  if (!upload || upload->bucket != bucket || upload->key != key)
    throw S3Error{404, "NoSuchUpload", "the specified multipart upload does not exist"};
  if (upload->owner != who.id && who.role != Role::kAdmin)
    refuse(engine, req, action, bucket + "/" + key,
           "a multipart upload is continued only by the access key that started it");
  return *upload;
}

Response create_upload(Request& req, runtime::Engine& engine, const std::string& bucket,
                       bool chart_bucket, const std::string& key, const Principal& who) {
  require_writer(engine, req, "s3.multipart.create", bucket + "/" + key, chart_bucket, who);
  // Hex, so it needs no escaping in XML or a query string.
  const std::string upload_id = auth::random_secret("");
  engine.transaction([&](Sql& sql) {
    audit(sql, req, "s3.multipart.create", bucket, key);
    store::create_s3_upload(
        sql, upload_id,
        {bucket, key, req.header("content-type").value_or("application/octet-stream"), who.id});
  });
  return xml(200, std::string("<InitiateMultipartUploadResult xmlns=\"") + kXmlns + "\"><Bucket>" +
                      xml_escape(bucket) + "</Bucket><Key>" + xml_escape(key) + "</Key><UploadId>" +
                      upload_id + "</UploadId></InitiateMultipartUploadResult>");
}

int part_number_of(const Request& req) {
  const std::string text = req.q("partNumber").value_or("");
  int n = 0;
  try {
    std::size_t used = 0;
    n = std::stoi(text, &used);
    if (used != text.size()) n = 0;
  } catch (const std::exception&) {
    n = 0;
  }
  if (n < 1 || n > 10000)
    throw S3Error{400, "InvalidArgument", "partNumber must be an integer from 1 to 10000"};
  return n;
}

Response upload_part(Request& req, runtime::Engine& engine, const std::string& upload_id,
                     const std::string& bucket, const std::string& key, const Principal& who,
                     std::uint64_t object_limit) {
  const int number = part_number_of(req);
  find_upload(req, engine, "s3.multipart.part", upload_id, bucket, key, who);
  const std::string etag = md5_hex(req.body);
  engine.transaction([&](Sql& sql) {
    // Held to the upload limit as a whole object would be; the part is not kept if it is over.
    if (store::put_s3_part(sql, upload_id, number, etag, req.body) > object_limit)
      throw S3Error{400, "EntityTooLarge",
                    "the parts add up to more than the upload limit of " +
                        std::to_string(object_limit) + " bytes"};
    audit(sql, req, "s3.multipart.part", bucket, key);
  });
  Response r;
  r.headers.emplace_back("ETag", "\"" + etag + "\"");
  return r;
}

// <CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"..."</ETag></Part>...
std::vector<std::pair<int, std::string>> listed_parts(const std::string& body) {
  std::vector<std::pair<int, std::string>> parts;
  auto inner = [](const std::string& block, const std::string& tag) -> std::optional<std::string> {
    const auto open = block.find("<" + tag + ">");
    const auto close = block.find("</" + tag + ">");
    if (open == std::string::npos || close == std::string::npos || close < open)
      return std::nullopt;
    const auto start = open + tag.size() + 2;
    return block.substr(start, close - start);
  };
  std::size_t at = 0;
  while ((at = body.find("<Part>", at)) != std::string::npos) {
    const auto end = body.find("</Part>", at);
    if (end == std::string::npos) break;
    const std::string block = body.substr(at, end - at);
    at = end;
    auto number = inner(block, "PartNumber");
    auto etag = inner(block, "ETag");
    if (!number || !etag)
      throw S3Error{400, "MalformedXML", "each Part needs a PartNumber and an ETag"};
    std::string tag = *etag;
    for (const std::string quote : {"&quot;", "\""})
      for (auto q = tag.find(quote); q != std::string::npos; q = tag.find(quote))
        tag.erase(q, quote.size());
    int n = 0;
    try {
      n = std::stoi(*number);
    } catch (const std::exception&) {
      throw S3Error{400, "MalformedXML", "PartNumber must be an integer"};
    }
    parts.emplace_back(n, tag);
  }
  if (parts.empty()) throw S3Error{400, "MalformedXML", "the request lists no parts"};
  return parts;
}

Response complete_upload(Request& req, runtime::Engine& engine, const S3Intake& charts,
                         const std::string& upload_id, const std::string& bucket, bool chart_bucket,
                         const std::string& key, const Principal& who, std::uint64_t object_limit) {
  const auto upload = find_upload(req, engine, "s3.put", upload_id, bucket, key, who);
  require_writer(engine, req, "s3.put", bucket + "/" + key, chart_bucket, who);
  const auto listed = listed_parts(req.body);
  std::vector<int> numbers;
  for (std::size_t i = 0; i < listed.size(); ++i) {
    if (i > 0 && listed[i].first <= listed[i - 1].first)
      throw S3Error{400, "InvalidPartOrder", "the parts must be listed in ascending order"};
    numbers.push_back(listed[i].first);
  }
  std::vector<std::optional<store::S3Part>> parts;
  engine.read([&](Sql& sql) { parts = store::get_s3_parts(sql, upload_id, numbers); });
  std::string body;
  std::string md5s;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i] || parts[i]->etag != listed[i].second)
      throw S3Error{400, "InvalidPart",
                    "part " + std::to_string(listed[i].first) +
                        " was not uploaded or its ETag does not match"};
    if (body.size() + parts[i]->content.size() > object_limit)
      throw S3Error{400, "EntityTooLarge",
                    "the parts add up to more than the upload limit of " +
                        std::to_string(object_limit) + " bytes"};
    body += parts[i]->content;
    md5s += bytes_of_hex(parts[i]->etag);
  }
  const std::string etag = md5_hex(md5s) + "-" + std::to_string(parts.size());
  store_new_object(req, engine, charts, bucket, chart_bucket, key, who,
                   {body, etag, upload.content_type,
                    [&](Sql& sql) { store::delete_s3_upload(sql, upload_id); }});
  return xml(200, std::string("<CompleteMultipartUploadResult xmlns=\"") + kXmlns +
                      "\"><Location>/" + xml_escape(bucket) + "/" + xml_escape(key) +
                      "</Location><Bucket>" + xml_escape(bucket) + "</Bucket><Key>" +
                      xml_escape(key) + "</Key><ETag>&quot;" + etag +
                      "&quot;</ETag></CompleteMultipartUploadResult>");
}

Response abort_upload(Request& req, runtime::Engine& engine, const std::string& upload_id,
                      const std::string& bucket, const std::string& key, const Principal& who) {
  find_upload(req, engine, "s3.multipart.abort", upload_id, bucket, key, who);
  engine.transaction([&](Sql& sql) {
    audit(sql, req, "s3.multipart.abort", bucket, key);
    store::delete_s3_upload(sql, upload_id);
  });
  Response r;
  r.status = 204;
  return r;
}

// The multipart requests of one object (?uploads, ?uploadId=...), or nullopt for the others.
std::optional<Response> multipart(Request& req, runtime::Engine& engine, const S3Intake& charts,
                                  const std::string& bucket, bool chart_bucket,
                                  const std::string& key, const Principal& who,
                                  std::uint64_t object_limit) {
  if (req.query.count("uploads")) {
    if (req.method != "POST")
      throw S3Error{501, "NotImplemented", "listing multipart uploads is not supported"};
    return create_upload(req, engine, bucket, chart_bucket, key, who);
  }
  const auto upload_id = req.q("uploadId");
  if (!upload_id) return std::nullopt;
  if (req.method == "PUT")
    return upload_part(req, engine, *upload_id, bucket, key, who, object_limit);
  if (req.method == "POST")
    return complete_upload(req, engine, charts, *upload_id, bucket, chart_bucket, key, who,
                           object_limit);
  if (req.method == "DELETE") return abort_upload(req, engine, *upload_id, bucket, key, who);
  throw S3Error{501, "NotImplemented", "listing the parts of an upload is not supported"};
}

// A Range header's one range ("bytes=0-99", "bytes=100-", "bytes=-100") as first and last byte,
// clamped to the object; InvalidRange (416) when it starts beyond the end or is malformed.
std::pair<std::size_t, std::size_t> byte_range(const std::string& header, std::size_t size) {
  auto bad = [&] { return S3Error{416, "InvalidRange", "the requested range is not satisfiable"}; };
  if (header.rfind("bytes=", 0) != 0 || header.find(',') != std::string::npos) throw bad();
  const std::string spec = header.substr(6);
  const auto dash = spec.find('-');
  if (dash == std::string::npos || size == 0) throw bad();
  auto number = [&](const std::string& text) -> std::size_t {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) throw bad();
    return static_cast<std::size_t>(std::stoull(text));
  };
  const std::string from = spec.substr(0, dash);
  const std::string to = spec.substr(dash + 1);
  if (from.empty()) {  // the last N bytes
    const std::size_t n = std::min(number(to), size);
    if (n == 0) throw bad();
    return {size - n, size - 1};
  }
  const std::size_t first = number(from);
  const std::size_t last = to.empty() ? size - 1 : std::min(number(to), size - 1);
  if (first >= size || last < first) throw bad();
  return {first, last};
}

// A chart bucket's object is read as its chart is (admin, or a reviewer it is assigned to);
// other buckets' objects by reviewers and operators. The read and its audit record commit
// together; a refusal is audited and says nothing about whether the key exists.
Response get_object(Request& req, runtime::Engine& engine, const S3Intake& charts,
                    const std::string& bucket, bool chart_bucket, const std::string& key,
                    const Principal& who) {
  const bool head = req.method == "HEAD";
  const std::string action = head ? "s3.head" : "s3.get";
  const std::string resource = bucket + "/" + key;
  if (!chart_bucket)
    require(engine, req, action, resource, who, {Role::kReviewer, Role::kOperator});
  std::optional<store::S3Object> object;
  bool refused = false;
  engine.transaction([&](Sql& sql) {
    object = store::get_s3_object(sql, bucket, key, !head);
    if (chart_bucket && who.role != Role::kAdmin) {
      refused = !object || !object->subject || !charts.may_read ||
                !charts.may_read(sql, *object->subject, who);
      if (refused) return;
    }
    if (object) audit(sql, req, action, bucket, key);
  });
  if (refused)
    refuse(engine, req, action, resource,
           "chart objects are read by admin and by a reviewer the chart is assigned to");
  if (!object) throw S3Error{404, "NoSuchKey", "the specified key does not exist"};
  Response r;
  r.content_type = object->content_type;
  r.body = head ? std::string(object->size, '\0') : *object->content;
  r.headers.emplace_back("Accept-Ranges", "bytes");
  // Clients fetch large objects in ranges, in parallel (the AWS CLI above 8 MB).
  if (auto range = req.header("range"); range && !head) {
    const auto [first, last] = byte_range(*range, r.body.size());
    r.status = 206;
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" +
                                                std::to_string(last) + "/" +
                                                std::to_string(r.body.size()));
    r.body = r.body.substr(first, last - first + 1);
  }
  r.headers.emplace_back("ETag", "\"" + object->etag + "\"");
  r.headers.emplace_back("Last-Modified", http_date(object->modified));
  return r;
}

// A chart bucket's keys are the uploaders' file names, which may name patients: admin only.
Response list_objects(Request& req, runtime::Engine& engine, const std::string& bucket,
                      bool chart_bucket, const Principal& who) {
  if (chart_bucket)
    require(engine, req, "s3.list", bucket, who, {});
  else
    require(engine, req, "s3.list", bucket, who, {Role::kReviewer, Role::kOperator});
  const bool v2 = req.q("list-type") == std::optional<std::string>("2");
  const std::string prefix = req.q("prefix").value_or("");
  const std::string delimiter = req.q("delimiter").value_or("");
  int max_keys = kMaxListKeys;
  if (auto m = req.q("max-keys")) {
    try {
      max_keys = std::clamp(std::stoi(*m), 0, kMaxListKeys);
    } catch (const std::exception&) {
      throw S3Error{400, "InvalidArgument", "max-keys must be an integer"};
    }
  }
  std::string after = v2 ? req.q("continuation-token").value_or(req.q("start-after").value_or(""))
                         : req.q("marker").value_or("");
  std::vector<store::S3ListEntry> rows;
  engine.transaction([&](Sql& sql) {
    auth::record(sql, audit_entry(req, "s3.list", "s3_bucket", bucket));
    rows = store::list_s3_objects(sql, bucket, after, prefix, max_keys + 1);
  });
  std::string contents, prefixes, last;
  std::set<std::string> seen_prefixes;
  int count = 0;
  bool truncated = false;
  for (const auto& row : rows) {
    if (count == max_keys) {
      truncated = true;
      break;
    }
    const std::string& key = row.key;
    last = key;
    ++count;
    if (!delimiter.empty()) {
      const auto pos = key.find(delimiter, prefix.size());
      if (pos != std::string::npos) {
        const std::string common = key.substr(0, pos + delimiter.size());
        if (seen_prefixes.insert(common).second)
          prefixes +=
              "<CommonPrefixes><Prefix>" + xml_escape(common) + "</Prefix></CommonPrefixes>";
        continue;
      }
    }
    contents += "<Contents><Key>" + xml_escape(key) + "</Key><LastModified>" + row.modified +
                "</LastModified><ETag>&quot;" + row.etag + "&quot;</ETag><Size>" + row.size +
                "</Size><StorageClass>STANDARD</StorageClass></Contents>";
  }
  std::string out = std::string("<ListBucketResult xmlns=\"") + kXmlns + "\"><Name>" +
                    xml_escape(bucket) + "</Name><Prefix>" + xml_escape(prefix) +
                    "</Prefix><MaxKeys>" + std::to_string(max_keys) + "</MaxKeys>";
  if (!delimiter.empty()) out += "<Delimiter>" + xml_escape(delimiter) + "</Delimiter>";
  out += std::string("<IsTruncated>") + (truncated ? "true" : "false") + "</IsTruncated>";
  if (v2) {
    out += "<KeyCount>" + std::to_string(count) + "</KeyCount>";
    if (truncated) out += "<NextContinuationToken>" + xml_escape(last) + "</NextContinuationToken>";
  } else {
    out += "<Marker>" + xml_escape(after) + "</Marker>";
    if (truncated) out += "<NextMarker>" + xml_escape(last) + "</NextMarker>";
  }
  return xml(200, out + contents + prefixes + "</ListBucketResult>");
}

// Sub-resources (?acl, ?policy, ...) that clients such as `s3cmd info` ask for: the owner's
// full-control ACL, "none configured" for the optional ones, NotImplemented for the rest.
std::optional<Response> subresource(const Request& req) {
  if (req.query.count("acl"))
    return xml(200, std::string("<AccessControlPolicy xmlns=\"") + kXmlns +
                        "\"><Owner><ID>chartflow</ID></Owner><AccessControlList><Grant>"
                        "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
                        "xsi:type=\"CanonicalUser\"><ID>chartflow</ID></Grantee>"
                        "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
                        "</AccessControlPolicy>");
  static const std::map<std::string, std::string> kNone = {
      {"policy", "NoSuchBucketPolicy"},
      {"cors", "NoSuchCORSConfiguration"},
      {"lifecycle", "NoSuchLifecycleConfiguration"},
      {"tagging", "NoSuchTagSet"},
      {"website", "NoSuchWebsiteConfiguration"}};
  for (const auto& [name, code] : kNone)
    if (req.query.count(name)) throw S3Error{404, code, "no " + name + " is configured"};
  for (const char* other : {"uploads", "versioning", "versions", "encryption", "replication",
                            "notification", "logging", "delete", "restore"})
    if (req.query.count(other))
      throw S3Error{501, "NotImplemented", std::string("?") + other + " is not supported"};
  return std::nullopt;
}

Response bucket_request(Request& req, runtime::Engine& engine, const std::string& bucket,
                        bool chart_bucket, const Principal& who) {
  if (req.method == "HEAD") return xml(200, "");
  if (req.method != "GET")
    throw S3Error{501, "NotImplemented", "only GET, HEAD and PUT of objects are supported"};
  if (req.query.count("location"))
    return xml(200,
               std::string("<LocationConstraint xmlns=\"") + kXmlns + "\"></LocationConstraint>");
  if (auto r = subresource(req)) return *r;
  return list_objects(req, engine, bucket, chart_bucket, who);
}

}  // namespace

std::optional<Response> s3_root(Request& req, const S3Config& s3) {
  const auto auth = req.header("authorization");
  if (!auth || auth->rfind(kSigV4Algorithm, 0) != 0) return std::nullopt;
  try {
    s3_authenticate(req, s3, std::chrono::system_clock::now());
    std::string buckets;
    for (const auto& [name, chart] : s3.buckets)
      buckets += "<Bucket><Name>" + name +
                 "</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket>";
    return xml(200, std::string("<ListAllMyBucketsResult xmlns=\"") + kXmlns +
                        "\"><Owner><ID>chartflow</ID><DisplayName>chartflow</DisplayName></Owner>"
                        "<Buckets>" +
                        buckets + "</Buckets></ListAllMyBucketsResult>");
  } catch (const S3Error& e) {
    return error_response(e, "/");
  }
}

void add_s3_routes(Router& router, runtime::Engine& engine, std::shared_ptr<const S3Config> s3,
                   const S3Intake& chart_intake, std::uint64_t object_limit,
                   core::JsonLimits chart_limits) {
  // A chart is JSON whatever the content type says: held to the server's limits, as at every
  // other door, before anything parses it (a single PUT and a completed multipart upload alike).
  S3Intake charts = chart_intake;
  if (charts.intake)
    charts.intake = [inner = chart_intake.intake, chart_limits](const IntakeRequest& r) {
      if (auto breach = core::check_json_limits(r.content, chart_limits))
        throw IntakeRejected{400, breach->describe()};
      return inner(r);
    };
  auto handle = [&engine, s3, charts, object_limit](Request& req) {
    const std::string bucket = req.param("bucket");
    const std::string key = req.params.count("key") ? req.param("key") : "";
    try {
      const auto chart_bucket = s3->bucket(bucket);
      // Authenticate before saying whether a bucket exists.
      Principal who;
      try {
        who = s3_authenticate(req, *s3, std::chrono::system_clock::now());
      } catch (const S3Error& e) {
        // Counted per source and minute, as bad bearer tokens are: no row per forged request.
        if (e.status == 403) {
          auto entry = audit_entry(req, "s3.auth", "s3_bucket", bucket);
          entry.outcome = "denied";
          entry.detail = {{"reason", e.code}, {"path", req.path}};
          count_refusal_now(engine, entry);
        }
        throw;
      }
      if (!chart_bucket) throw S3Error{404, "NoSuchBucket", "the specified bucket does not exist"};
      if (key.empty()) return bucket_request(req, engine, bucket, *chart_bucket, who);
      check_s3_key(key);
      if (auto r = multipart(req, engine, charts, bucket, *chart_bucket, key, who, object_limit))
        return *r;
      if (auto r = subresource(req)) return *r;
      if (req.method == "PUT")
        return put_object(req, engine, charts, bucket, *chart_bucket, key, who);
      if (req.method == "GET" || req.method == "HEAD")
        return get_object(req, engine, charts, bucket, *chart_bucket, key, who);
      if (req.method == "DELETE")
        return delete_object(req, engine, bucket, *chart_bucket, key, who);
      throw S3Error{501, "NotImplemented", "POST to an object is only for multipart uploads"};
    } catch (const S3Error& e) {
      return error_response(e, req.path);
    }
  };
  for (const char* method : {"GET", "PUT", "POST", "DELETE"})
    router.add(method, "/{bucket}/{*key}", "s3", Access::self(), handle);
}

}  // namespace chartflow::http
