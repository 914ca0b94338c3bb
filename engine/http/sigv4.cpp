#include "http/sigv4.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <sstream>

#include "engine/util/hash.hpp"
#include "http/hmac.hpp"

namespace chartflow::http {

using util::constant_time_equal;
using util::sha256_raw;
using util::to_hex;
namespace {

std::string trim_collapse(const std::string& v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// 20150830T123600Z -> time point; nullopt when malformed or out of range. The range check is
// not cosmetic: system_clock counts nanoseconds in 64 bits (years 1678 to 2262), and a far year
// overflowed it (found by fuzzing).
std::optional<std::chrono::system_clock::time_point> parse_amz_date(const std::string& s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  for (std::size_t i = 0; i < 15; ++i)
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
  auto num = [&s](std::size_t at, std::size_t len) { return std::stoi(s.substr(at, len)); };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  tm.tm_hour = num(9, 2);
  tm.tm_min = num(11, 2);
  tm.tm_sec = num(13, 2);
  if (tm.tm_year < 70 || tm.tm_year > 200 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

std::optional<SigV4Auth> parse_sigv4_authorization(const std::string& header, std::string* error) {
  const std::string prefix = std::string(kSigV4Algorithm) + " ";
  if (header.rfind(prefix, 0) != 0) {
    *error = "the Authorization header is not AWS4-HMAC-SHA256 (Signature Version 4)";
    return std::nullopt;
  }
  SigV4Auth a;
  std::string credential, signed_headers;
  std::stringstream parts(header.substr(prefix.size()));
  for (std::string part; std::getline(parts, part, ',');) {
    part = trim_collapse(part);
    const auto eq = part.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = part.substr(0, eq), v = part.substr(eq + 1);
    if (k == "Credential") credential = v;
    if (k == "SignedHeaders") signed_headers = v;
    if (k == "Signature") a.signature = v;
  }
  std::vector<std::string> scope;
  std::stringstream cs(credential);
  for (std::string s; std::getline(cs, s, '/');) scope.push_back(s);
  if (scope.size() != 5 || scope[4] != "aws4_request" || signed_headers.empty() ||
      a.signature.size() != 64) {
    *error =
        "the Authorization header lacks Credential=KEY/DATE/REGION/SERVICE/aws4_request, "
        "SignedHeaders or Signature";
    return std::nullopt;
  }
  a.access_key = scope[0];
  a.date = scope[1];
  a.region = scope[2];
  a.service = scope[3];
  std::stringstream hs(signed_headers);
  for (std::string h; std::getline(hs, h, ';');) a.signed_headers.push_back(h);
  return a;
}

std::string sigv4_uri_encode(const std::string& in, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string sigv4_canonical_request(const Request& req,
                                    const std::vector<std::string>& signed_headers,
                                    const std::string& payload_hash) {
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [k, v] : req.query)
    query.emplace_back(sigv4_uri_encode(k, false), sigv4_uri_encode(v, false));
  std::sort(query.begin(), query.end());
  std::string q;
  for (const auto& [k, v] : query) q += (q.empty() ? "" : "&") + k + "=" + v;
  std::string headers;
  std::string names;
  for (const auto& h : signed_headers) {
    headers += h + ":" + trim_collapse(req.header(h).value_or("")) + "\n";
    names += (names.empty() ? "" : ";") + h;
  }
  const std::string path = req.path.empty() ? "/" : req.path;
  return req.method + "\n" + sigv4_uri_encode(path, true) + "\n" + q + "\n" + headers + "\n" +
         names + "\n" + payload_hash;
}

std::string sigv4_string_to_sign(const std::string& amz_date, const std::string& scope,
                                 const std::string& canonical_request) {
  return std::string(kSigV4Algorithm) + "\n" + amz_date + "\n" + scope + "\n" +
         util::to_hex(util::sha256_raw(canonical_request));
}

std::string sigv4_signature(const std::string& secret, const SigV4Auth& auth,
                            const std::string& string_to_sign) {
  std::string key = hmac_sha256("AWS4" + secret, auth.date);
  key = hmac_sha256(key, auth.region);
  key = hmac_sha256(key, auth.service);
  key = hmac_sha256(key, "aws4_request");
  return util::to_hex(hmac_sha256(key, string_to_sign));
}

std::string sigv4_verify(const Request& req, const SigV4Auth& auth, const std::string& secret,
                         const std::string& payload_hash,
                         std::chrono::system_clock::time_point now) {
  const auto amz_date = req.header("x-amz-date");
  if (!amz_date) return "the request has no X-Amz-Date header";
  const auto when = parse_amz_date(*amz_date);
  if (!when)
    return "X-Amz-Date is not a UTC time of the form 20150830T123600Z (years 1970 to 2100)";
  if (amz_date->substr(0, 8) != auth.date) return "X-Amz-Date is not the credential's date";
  const auto skew = when > now ? *when - now : now - *when;
  if (skew > kSigV4MaxSkew) return "the request time is more than 15 minutes from the server's";
  for (const char* required : {"host", "x-amz-date"})
    if (std::find(auth.signed_headers.begin(), auth.signed_headers.end(), required) ==
        auth.signed_headers.end())
      return std::string("the ") + required + " header must be signed";
  const std::string expected = sigv4_signature(
      secret, auth,
      sigv4_string_to_sign(*amz_date, auth.scope(),
                           sigv4_canonical_request(req, auth.signed_headers, payload_hash)));
  if (!util::constant_time_equal(expected, auth.signature))
    return "the request signature we calculated does not match the signature you provided";
  return "";
}

}  // namespace chartflow::http
