// The S3-compatible API against a running `chartflow serve`, driven by the real AWS CLI and
// s3cmd (Debian's awscli and s3cmd): puts start runs, gets return the bytes, and bad signatures
// or bad charts are refused with S3 errors and store nothing.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <regex>

#include "engine/handler.hpp"
#include "engine/util/hash.hpp"
#include "http/hmac.hpp"
#include "http/sigv4.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/s3_signer.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using chartflow::Json;
using namespace std::chrono_literals;

constexpr const char* kAccessKey = "AKIACHARTFLOWTEST01";
constexpr const char* kSecret = "chartflow-test-secret-0123456789abcdef";

const std::string kChartFile = std::string(CHARTFLOW_SOURCE_DIR) +
                               "/tests/data/charts/"
                               "enc-brady-kuhlman-20010718-imp-encounter-inpatient-224a9d89.json";

// Debian's AWS CLI v2 (what CI installs) when present, else whatever `aws` is on PATH.
std::string md5_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), digest, &n, EVP_md5(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[digest[i] >> 4];
    hex += kDigits[digest[i] & 15];
  }
  return hex;
}

std::string aws_binary() { return fs::exists("/usr/bin/aws") ? "/usr/bin/aws" : "aws"; }

struct CommandResult {
  int code;
  std::string output;
};

class S3ClientsTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    if (std::system("command -v aws >/dev/null && command -v s3cmd >/dev/null") != 0)
      GTEST_FAIL() << "aws and s3cmd must be installed (deploy/install_deps.sh --test)";
    dir_ = fs::temp_directory_path() / ("cf-s3-" + schema());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "workflows");
    std::ofstream(dir_ / "workflows/on-chart.yaml")
        << "name: on-chart\non: [{ event: chart.uploaded }]\nsteps:\n  a: { handler: noop }\n";
    std::ofstream(dir_ / "workflows/on-object.yaml")
        << "name: on-object\non: [{ event: object.created }]\nsteps:\n  a: { handler: noop }\n";
    std::ofstream(dir_ / "s3.yaml")
        << "access_keys:\n  - access_key: " << kAccessKey << "\n    secret: " << kSecret
        << "\n    role: admin\n"
           "buckets:\n  charts: { chart: true }\n  scans: {}\n";
    // Path-style addressing; the CLI signs the payload over plain HTTP.
    std::ofstream(dir_ / "aws.cfg") << "[default]\nregion = us-east-1\ns3 =\n"
                                       "  addressing_style = path\n";
    server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{CHARTFLOW_BINARY, "serve", "--listen", "127.0.0.1:0",
                                 "--workflows", (dir_ / "workflows").string(), "--database-url",
                                 dsn(), "--s3-config", (dir_ / "s3.yaml").string(), "--workers",
                                 "2", "--upload-limit", "20M"},
        dir_ / "serve.log");
    port_ = wait_listening(*server_, 20s);
    ASSERT_NE(port_, 0) << server_->log();
    ASSERT_TRUE(wait_healthy(*server_, port_, 20s)) << server_->log();
    const std::string host = "127.0.0.1:" + std::to_string(port_);
    std::ofstream(dir_ / "s3cmd.cfg")
        << "[default]\naccess_key = " << kAccessKey << "\nsecret_key = " << kSecret
        << "\nhost_base = " << host << "\nhost_bucket = " << host
        << "\nuse_https = False\nsignature_v2 = False\n"
           "bucket_location = us-east-1\ncheck_ssl_certificate = "
           "False\n";
  }
  void TearDown() override {
    if (server_) {
      server_->signal(SIGTERM);
      server_->wait_exit(10s);
    }
    server_.reset();
    fs::remove_all(dir_);
    PgTest::TearDown();
  }

  CommandResult run(const std::string& cmd) {
    const fs::path out = dir_ / "cmd.out";
    ChildProcess p({"/bin/sh", "-c", cmd}, out);
    auto code = p.wait_exit(60s);
    return {code.value_or(-1), read_file(out)};
  }

  CommandResult aws(const std::string& args, const std::string& secret = kSecret) {
    return run("AWS_CONFIG_FILE=" + (dir_ / "aws.cfg").string() +
               " AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_ACCESS_KEY_ID=" + kAccessKey +
               " AWS_SECRET_ACCESS_KEY=" + secret +
               // Newer botocore would send aws-chunked bodies with a trailing CRC; the API
               // takes plain (signed) payloads.
               " AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_MAX_ATTEMPTS=1"
               " AWS_EC2_METADATA_DISABLED=true"
               " AWS_PAGER= " +
               aws_binary() + " --endpoint-url http://127.0.0.1:" + std::to_string(port_) + " " +
               args + " 2>&1");
  }

  CommandResult s3cmd(const std::string& args) {
    return run("s3cmd -c " + (dir_ / "s3cmd.cfg").string() + " " + args + " 2>&1");
  }

  // A request signed here with Signature V4 (host, x-amz-content-sha256, x-amz-date), for the
  // cases the CLIs do not produce.
  HttpResponse s3_request(const std::string& method, const std::string& path,
                          const std::string& body = "",
                          const std::string& payload_hash = "") const {
    return s3_call(port_, kAccessKey, kSecret, method, path, body, payload_hash);
  }

  fs::path dir_;
  unsigned short port_ = 0;
  std::unique_ptr<ChildProcess> server_;
};

TEST_F(S3ClientsTest, AwsCliPutsGetsAndListsAndBadInputStoresNothing) {
  std::ofstream(dir_ / "scan.pdf") << "%PDF-1.4 a scanned consent form";
  auto put = aws("s3 cp " + (dir_ / "scan.pdf").string() + " s3://scans/2026/scan.pdf");
  ASSERT_EQ(put.code, 0) << put.output << server_->log();
  const Json ev = Json::parse(scalar("SELECT body FROM event WHERE type = 'object.created'"));
  EXPECT_EQ(ev.at("bucket"), "scans");
  EXPECT_EQ(ev.at("key"), "2026/scan.pdf");
  EXPECT_EQ(ev.at("size"), 31);
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT status FROM workflow_run WHERE workflow = 'on-object'") == "succeeded";
  }));

  auto chart = aws("s3 cp " + kChartFile + " s3://charts/kuhlman.json");
  ASSERT_EQ(chart.code, 0) << chart.output;
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
  EXPECT_EQ(scalar("SELECT source FROM event WHERE type = 'chart.uploaded'"), "s3");
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run WHERE workflow = 'on-chart'"), "1");

  auto ls = aws("s3 ls s3://scans/2026/");
  EXPECT_EQ(ls.code, 0) << ls.output;
  EXPECT_NE(ls.output.find("scan.pdf"), std::string::npos) << ls.output;
  auto get = aws("s3 cp s3://scans/2026/scan.pdf " + (dir_ / "back.pdf").string());
  ASSERT_EQ(get.code, 0) << get.output;
  EXPECT_EQ(read_file(dir_ / "back.pdf"), "%PDF-1.4 a scanned consent form");

  // A Bundle without a Patient: refused with an S3 error, nothing stored.
  std::ofstream(dir_ / "bad.json") << R"({"resourceType": "Bundle", "type": "collection",
      "entry": [{"resource": {"resourceType": "Observation", "id": "o1"}}]})";
  auto bad = aws("s3 cp " + (dir_ / "bad.json").string() + " s3://charts/bad.json");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("InvalidArgument"), std::string::npos) << bad.output;
  auto wrong = aws("s3 cp " + (dir_ / "scan.pdf").string() + " s3://scans/other.pdf",
                   "not-the-secret-at-all-0000000000");
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.output.find("SignatureDoesNotMatch"), std::string::npos) << wrong.output;
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_object"), "2");
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), "2");
}

TEST_F(S3ClientsTest, S3cmdPutsAndGets) {
  std::ofstream(dir_ / "note.txt") << "hello from s3cmd";
  auto put = s3cmd("put " + (dir_ / "note.txt").string() + " s3://scans/notes/note.txt");
  ASSERT_EQ(put.code, 0) << put.output << server_->log();
  EXPECT_EQ(scalar("SELECT body->>'key' FROM event WHERE type = 'object.created'"),
            "notes/note.txt");
  auto get = s3cmd("get --force s3://scans/notes/note.txt " + (dir_ / "back.txt").string());
  ASSERT_EQ(get.code, 0) << get.output;
  EXPECT_EQ(read_file(dir_ / "back.txt"), "hello from s3cmd");
  auto info = s3cmd("info s3://scans/notes/note.txt");  // HeadObject
  EXPECT_EQ(info.code, 0) << info.output;
  // s3cmd prints HEAD's fields one per line: the size and the ETag (the body's MD5) as stored.
  EXPECT_TRUE(std::regex_search(info.output, std::regex(R"(File size:\s+16\n)"))) << info.output;
  EXPECT_TRUE(std::regex_search(info.output,
                                std::regex(R"(MD5 sum:\s+)" + md5_hex("hello from s3cmd") + "\n")))
      << info.output;
  auto ls = s3cmd("ls s3://scans/notes/");
  EXPECT_NE(ls.output.find("s3://scans/notes/note.txt"), std::string::npos) << ls.output;
  auto chart = s3cmd("put " + kChartFile + " s3://charts/k.json");
  ASSERT_EQ(chart.code, 0) << chart.output;
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
}

TEST_F(S3ClientsTest, SignedRequestsHeadListAndRefuseBadKeysAndPayloads) {
  auto put = s3_request("PUT", "/scans/a/b.txt", "twelve bytes");
  ASSERT_EQ(put.status, 200) << put.body;
  // (HEAD is exercised by s3cmd info: this test client reads a body after every response.)
  auto get = s3_request("GET", "/scans/a/b.txt");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "twelve bytes");
  auto buckets = s3_request("GET", "/");
  EXPECT_EQ(buckets.status, 200);
  EXPECT_NE(buckets.body.find("<Name>charts</Name>"), std::string::npos) << buckets.body;
  auto list = s3_request("GET", "/scans?list-type=2&prefix=a%2F");
  EXPECT_NE(list.body.find("<Key>a/b.txt</Key><LastModified>"), std::string::npos) << list.body;
  EXPECT_NE(list.body.find("<KeyCount>1</KeyCount>"), std::string::npos) << list.body;
  EXPECT_EQ(s3_request("GET", "/scans/a/missing.txt").status, 404);

  auto nobucket = s3_request("PUT", "/nobucket/x.txt", "x");
  EXPECT_EQ(nobucket.status, 404);
  EXPECT_NE(nobucket.body.find("<Code>NoSuchBucket</Code>"), std::string::npos) << nobucket.body;
  auto traversal = s3_request("PUT", "/scans/a/../../etc/passwd", "x");
  EXPECT_EQ(traversal.status, 400);
  EXPECT_NE(traversal.body.find("segments"), std::string::npos) << traversal.body;
  auto control = s3_request("PUT", "/scans/bad%01key", "x");
  EXPECT_EQ(control.status, 400);
  EXPECT_NE(control.body.find("control characters"), std::string::npos) << control.body;
  auto mismatch = s3_request("PUT", "/scans/m.txt", "the body", std::string(64, 'a'));
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_NE(mismatch.body.find("XAmzContentSHA256Mismatch"), std::string::npos) << mismatch.body;
  auto streaming = s3_request("PUT", "/scans/s.txt", "x", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
  EXPECT_EQ(streaming.status, 501);
  auto anon = request("PUT", "127.0.0.1", port_, "/scans/x.pdf", "data");
  EXPECT_EQ(anon.status, 403);
  EXPECT_NE(anon.body.find("<Code>AccessDenied</Code>"), std::string::npos) << anon.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_object"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), "1");
}

// Putting an object again: the same chart twice is one revision and one run (the upload is a
// duplicate), a changed chart under the same key is the next revision, and a plain object put
// again is replaced, each put announced once. HEAD answers the stored object's fields.
TEST_F(S3ClientsTest, PuttingTheSameObjectAgain) {
  const std::string chart_key = "s3://charts/again.json";
  ASSERT_EQ(aws("s3 cp " + kChartFile + " " + chart_key).code, 0);
  auto again = aws("s3 cp " + kChartFile + " " + chart_key);
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'chart.uploaded'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run"), "1");

  Json changed = Json::parse(read_file(kChartFile));
  changed["id"] = "changed-for-revision-two";
  std::ofstream(dir_ / "changed.json") << changed.dump();
  ASSERT_EQ(aws("s3 cp " + (dir_ / "changed.json").string() + " " + chart_key).code, 0);
  EXPECT_EQ(scalar("SELECT string_agg(revision::text, ',' ORDER BY revision) FROM chart_revision "
                   "WHERE source = 'upload'"),
            "1,2");
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'chart.uploaded'"), "2");

  std::ofstream(dir_ / "v1.txt") << "first version";
  std::ofstream(dir_ / "v2.txt") << "second, longer version";
  ASSERT_EQ(aws("s3 cp " + (dir_ / "v1.txt").string() + " s3://scans/doc.txt").code, 0);
  ASSERT_EQ(aws("s3 cp " + (dir_ / "v2.txt").string() + " s3://scans/doc.txt").code, 0);
  ASSERT_EQ(aws("s3 cp s3://scans/doc.txt " + (dir_ / "back.txt").string()).code, 0);
  EXPECT_EQ(read_file(dir_ / "back.txt"), "second, longer version");
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_object WHERE bucket = 'scans'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'object.created'"), "2");

  auto head = aws("s3api head-object --bucket scans --key doc.txt --output json");
  ASSERT_EQ(head.code, 0) << head.output;
  const Json fields = Json::parse(head.output);
  EXPECT_EQ(fields.at("ContentLength"), std::string("second, longer version").size());
  EXPECT_EQ(fields.at("ETag"), "\"" + md5_hex("second, longer version") + "\"");
  EXPECT_TRUE(fields.contains("LastModified")) << head.output;
}

// A chart padded to `bytes` with a narrative on its Patient: still a valid chart.
void write_big_chart(const fs::path& path, std::size_t bytes) {
  Json chart = Json::parse(read_file(kChartFile));
  const std::size_t have = chart.dump().size();
  for (auto& entry : chart.at("entry"))
    if (entry.at("resource").value("resourceType", "") == "Patient") {
      entry["resource"]["text"] = {
          {"status", "generated"},
          {"div", "<div xmlns=\"http://www.w3.org/1999/xhtml\">" +
                      std::string(bytes > have + 200 ? bytes - have - 200 : 0, 'x') + "</div>"}};
      break;
    }
  std::ofstream(path, std::ios::binary) << chart.dump();
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return out;
}

// The first-day finding: `aws s3 cp` of a chart over 8 MB got 501 NotImplemented for
// CreateMultipartUpload though charts up to the upload limit are accepted in one PUT.
TEST_F(S3ClientsTest, AwsCliMultipartUploadOfAChartOverEightMegabytes) {
  write_big_chart(dir_ / "big-chart.json", std::size_t{9} * 1024 * 1024);
  auto put = aws("s3 cp " + (dir_ / "big-chart.json").string() + " s3://charts/big.json");
  ASSERT_EQ(put.code, 0) << put.output << server_->log();
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
  EXPECT_EQ(scalar("SELECT source FROM event WHERE type = 'chart.uploaded'"), "s3");
  EXPECT_EQ(scalar("SELECT size FROM s3_object WHERE key = 'big.json'"),
            std::to_string(fs::file_size(dir_ / "big-chart.json")));
  // The parts are gone once the object is stored; the audit trail has the upload's steps.
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_multipart_upload"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_multipart_part"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_event WHERE action = 's3.multipart.create'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) > 1 FROM audit_event WHERE action = 's3.multipart.part'"), "t");
  auto get = aws("s3 cp s3://charts/big.json " + (dir_ / "back.json").string());
  ASSERT_EQ(get.code, 0) << get.output;
  // The CLI fetches a large object in ranges (GET with Range, 206): the bytes come back whole.
  EXPECT_TRUE(read_file(dir_ / "back.json") == read_file(dir_ / "big-chart.json"));
}

TEST_F(S3ClientsTest, S3cmdMultipartUploadOverFifteenMegabytesAndDelete) {
  const std::string data = random_bytes(std::size_t{16} * 1024 * 1024 + 123);
  std::ofstream(dir_ / "scan.tiff", std::ios::binary) << data;
  auto put = s3cmd("put " + (dir_ / "scan.tiff").string() + " s3://scans/big/scan.tiff");
  ASSERT_EQ(put.code, 0) << put.output << server_->log();
  const Json ev = Json::parse(scalar("SELECT body FROM event WHERE type = 'object.created'"));
  EXPECT_EQ(ev.at("size"), data.size());
  EXPECT_EQ(ev.at("sha256"), util::to_hex(util::sha256_raw(data)));
  auto get = s3cmd("get --force s3://scans/big/scan.tiff " + (dir_ / "back.tiff").string());
  ASSERT_EQ(get.code, 0) << get.output;
  EXPECT_TRUE(read_file(dir_ / "back.tiff") == data);

  // DeleteObject (was 501): gone, audited; deleting it again succeeds as S3 does.
  auto rm = s3cmd("rm s3://scans/big/scan.tiff");
  ASSERT_EQ(rm.code, 0) << rm.output;
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_object WHERE key = 'big/scan.tiff'"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_event WHERE action = 's3.delete'"), "1");
  auto rm_again = aws("s3 rm s3://scans/big/scan.tiff");
  EXPECT_EQ(rm_again.code, 0) << rm_again.output;
  auto gone = s3_request("GET", "/scans/big/scan.tiff");
  EXPECT_EQ(gone.status, 404);
}

// Parts are held to the upload limit together (20M here), an aborted upload leaves nothing, and
// a completion naming a part that was never sent is refused.
TEST_F(S3ClientsTest, MultipartPartsAreHeldToTheUploadLimitAndAbortLeavesNothing) {
  auto create = s3_request("POST", "/scans/limit.bin?uploads");
  ASSERT_EQ(create.status, 200) << create.body;
  const auto open = create.body.find("<UploadId>") + 10;
  const std::string id = create.body.substr(open, create.body.find("</UploadId>") - open);
  auto part1 = s3_request("PUT", "/scans/limit.bin?partNumber=1&uploadId=" + id,
                          random_bytes(std::size_t{15} * 1024 * 1024));
  ASSERT_EQ(part1.status, 200) << part1.body;
  auto part2 = s3_request("PUT", "/scans/limit.bin?partNumber=2&uploadId=" + id,
                          random_bytes(std::size_t{6} * 1024 * 1024));
  EXPECT_EQ(part2.status, 400);
  EXPECT_NE(part2.body.find("EntityTooLarge"), std::string::npos) << part2.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_multipart_part"), "1");
  auto complete = s3_request("POST", "/scans/limit.bin?uploadId=" + id,
                             "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber>"
                             "<ETag>\"00\"</ETag></Part></CompleteMultipartUpload>");
  EXPECT_EQ(complete.status, 400);
  EXPECT_NE(complete.body.find("InvalidPart"), std::string::npos) << complete.body;
  auto abort = s3_request("DELETE", "/scans/limit.bin?uploadId=" + id);
  EXPECT_EQ(abort.status, 204) << abort.body;
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_multipart_upload"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_multipart_part"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM s3_object"), "0");
  auto unknown = s3_request("PUT", "/scans/limit.bin?partNumber=1&uploadId=" + id, "x");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("NoSuchUpload"), std::string::npos) << unknown.body;
}

}  // namespace
}  // namespace chartflow::testing
