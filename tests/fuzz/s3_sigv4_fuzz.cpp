// libFuzzer target: an S3 request in a readable form ("METHOD TARGET", then "name: value"
// header lines, an empty line and the body) through what the S3 API does before it reaches the
// database: the target split and decoded as the server does, Router::handle over the S3 route
// pattern, then bucket-name and object-key validation, the Authorization header parse, the
// payload hash, the canonical request and the signature check against fixed access keys (the
// AWS example keys, so the seeds built from AWS's published vectors verify); the SigV4 functions
// and the bucket and key checks are also called directly, since behind the route most mutations
// stop at the signature. Control characters in the path are passed through on purpose: the key
// check must refuse them on its own.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/router.hpp"
#include "http/s3_auth.hpp"
#include "http/sigv4.hpp"

namespace {

using namespace chartflow::http;

// The S3 GET Object example of the S3 API reference and the SigV4 test suite's key.
const std::string kS3Secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const std::string kSuiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const auto kS3ExampleTime = std::chrono::system_clock::from_time_t(1369353600);  // 2013-05-24
const auto kSuiteTime = std::chrono::system_clock::from_time_t(1440938160);      // 2015-08-30 12:36

S3Config make_config() {
  S3Config c;
  c.keys["AKIAIOSFODNN7EXAMPLE"] = {kS3Secret, Role::kUploader};
  c.keys["AKIDEXAMPLE"] = {kSuiteSecret, Role::kReviewer};
  c.buckets["examplebucket"] = false;
  c.buckets["charts"] = true;
  return c;
}

// The checks of add_s3_routes' handler that need no database, in the same order.
Router make_router(const S3Config& s3) {
  Router r;
  auto handle = [&s3](Request& req) {
    const std::string bucket = req.param("bucket");
    const std::string key = req.params.count("key") ? req.param("key") : "";
    try {
      bucket_name_problem(bucket);
      const auto chart_bucket = s3.bucket(bucket);
      const Principal who = s3_authenticate(req, s3, kS3ExampleTime);
      if (who.id != "s3:AKIAIOSFODNN7EXAMPLE") __builtin_trap();  // only that key is s3-scoped
      if (!chart_bucket) return Response::error(404, "NoSuchBucket");
      if (!key.empty()) check_s3_key(key);
      return Response::error(200, "ok");
    } catch (const S3Error& e) {
      if (e.status < 400 || e.status > 599) __builtin_trap();
      return Response::error(e.status, e.code);
    }
  };
  for (const char* method : {"GET", "HEAD", "PUT", "POST", "DELETE"})
    r.add(method, "/{bucket}/{*key}", "s3", Access::self(), handle);
  return r;
}

Request parse_input(std::string_view in) {
  Request req;
  auto next_line = [&in] {
    const auto nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  const std::string_view first = next_line();
  const auto sp = first.find(' ');
  req.method = std::string(first.substr(0, sp));
  const std::string_view target = sp == std::string_view::npos ? "" : first.substr(sp + 1);
  const auto qpos = target.find('?');
  req.path = url_decode(target.substr(0, qpos), false);
  if (qpos != std::string_view::npos) req.query = parse_query(target.substr(qpos + 1));
  for (std::string_view line = next_line(); !line.empty(); line = next_line()) {
    const auto colon = line.find(':');
    std::string name(line.substr(0, colon));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers[name] = std::string(value);
  }
  req.body = std::string(in);
  req.remote = "127.0.0.1";
  return req;
}

// The SigV4 functions on their own, with whichever example key the credential names.
void verify_directly(const Request& req) {
  const auto header = req.header("authorization");
  if (!header) return;
  std::string error;
  const auto auth = parse_sigv4_authorization(*header, &error);
  if (!auth) {
    if (error.empty()) __builtin_trap();  // a refusal always says why
    return;
  }
  if (auth->signature.size() != 64 || auth->signed_headers.empty()) __builtin_trap();
  const std::string& secret = auth->access_key == "AKIDEXAMPLE" ? kSuiteSecret : kS3Secret;
  const std::string hash = req.header("x-amz-content-sha256").value_or(kUnsignedPayload);
  for (const auto now : {kS3ExampleTime, kSuiteTime})
    if (sigv4_verify(req, *auth, secret, hash, now) != sigv4_verify(req, *auth, secret, hash, now))
      __builtin_trap();
  sigv4_uri_encode(req.path, false);
}

// Bucket and key validation on their own: behind the route they are reached only with a valid
// signature, which mutations of the signed seeds rarely keep. An accepted key must be one the
// rules allow.
void validate_path_directly(const std::string& path) {
  const auto slash = path.find('/', 1);
  bucket_name_problem(
      path.substr(path.empty() ? 0 : 1, slash == std::string::npos ? slash : slash - 1));
  if (slash == std::string::npos) return;
  const std::string key = path.substr(slash + 1);
  try {
    check_s3_key(key);
  } catch (const S3Error& e) {
    if (e.status != 400) __builtin_trap();
    return;
  }
  if (key.empty() || key.size() > 1024) __builtin_trap();
  for (unsigned char c : key)
    if (c < 0x20 || c == 0x7f) __builtin_trap();
  const std::string framed = "/" + key + "/";
  if (framed.find("/./") != std::string::npos || framed.find("/../") != std::string::npos)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const S3Config s3 = make_config();
  static const Router router = make_router(s3);
  Request req = parse_input(std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    verify_directly(req);
    validate_path_directly(req.path);
  } catch (...) {
    __builtin_trap();  // these report problems as values or S3Error, never otherwise
  }
  const Response resp = router.handle(req);
  // The handler turns every problem into an S3Error: a 500 is an exception that escaped it.
  if (resp.status < 200 || resp.status > 599 || resp.status == 500) __builtin_trap();
  return 0;
}
