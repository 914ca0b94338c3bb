// The event sources' config files: webhook secrets and S3 keys/buckets load, and every mistake
// stops start-up with the file and the problem named.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "http/s3_config.hpp"
#include "http/webhook_auth.hpp"

namespace chartflow::http {
namespace {

namespace fs = std::filesystem;

fs::path write(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("cf-config-" + std::to_string(getpid()) + name);
  std::ofstream(p) << text;
  return p;
}

template <typename Fn>
std::string load_error(Fn fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(SourceConfigTest, WebhookSecretsFromValueFileAndEnvironment) {
  const auto secret_file = write("secret", "file-secret-0123456789\n");
  ::setenv("CF_TEST_WEBHOOK_SECRET", "env-secret-0123456789", 1);
  const auto file = write("hooks.yaml",
                          "lab.result: { secret: inline-secret-0123456789 }\n"
                          "pharmacy.dispensed: { secret_file: " +
                              secret_file.string() +
                              ", max_skew_seconds: 60 }\n"
                              "billing.paid: { secret_env: CF_TEST_WEBHOOK_SECRET }\n");
  const auto s = WebhookSecrets::load(file);
  EXPECT_EQ(s.find("lab.result")->secret, "inline-secret-0123456789");
  EXPECT_EQ(s.find("pharmacy.dispensed")->secret, "file-secret-0123456789");
  EXPECT_EQ(s.find("pharmacy.dispensed")->max_skew, std::chrono::seconds(60));
  EXPECT_EQ(s.find("billing.paid")->secret, "env-secret-0123456789");
  EXPECT_EQ(s.find("other"), nullptr);
}

TEST(SourceConfigTest, WebhookSecretMistakesAreNamed) {
  ::setenv("CF_TEST_WEBHOOK_SECRET_2", "env-secret-0123456789", 1);
  auto err = [](const std::string& yaml) {
    const auto f = write("bad.yaml", yaml);
    return load_error([&] { WebhookSecrets::load(f); });
  };
  EXPECT_NE(err("a: { secret: short }").find("at least 16"), std::string::npos);
  EXPECT_NE(err("a: { secret: x0123456789abcdef, secret_env: CF_TEST_WEBHOOK_SECRET_2 }")
                .find("exactly one"),
            std::string::npos);
  EXPECT_NE(err("a: { secret_env: CF_TEST_NOT_SET_ANYWHERE }").find("is not set"),
            std::string::npos);
  EXPECT_NE(err("a: { secret_file: /nonexistent/secret }").find("cannot read"), std::string::npos);
  EXPECT_NE(err("[1, 2]").find("mapping"), std::string::npos);
  EXPECT_NE(err("a: {").find("bad.yaml"), std::string::npos);
}

TEST(SourceConfigTest, S3KeysAndBuckets) {
  const auto file =
      write("s3.yaml",
            "access_keys:\n"
            "  - { access_key: AKIAWARD3, secret: ward3-secret-0123456789 }\n"
            "  - { access_key: AKIAOPS, secret: ops-secret-0123456789, role: operator }\n"
            "buckets:\n  charts: { chart: true }\n  scans: {}\n");
  const auto c = S3Config::load(file);
  EXPECT_EQ(c.key("AKIAWARD3")->role, Role::kUploader);
  EXPECT_EQ(c.key("AKIAOPS")->role, Role::kOperator);
  EXPECT_EQ(c.key("AKIANONE"), nullptr);
  EXPECT_EQ(c.bucket("charts"), true);
  EXPECT_EQ(c.bucket("scans"), false);
  EXPECT_FALSE(c.bucket("nope").has_value());

  auto err = [](const std::string& yaml) {
    const auto f = write("bad-s3.yaml", yaml);
    return load_error([&] { S3Config::load(f); });
  };
  const std::string key = "access_keys: [{ access_key: A, secret: s-0123456789abcdef }]\n";
  EXPECT_NE(err(key + "buckets: { metrics: {} }").find("reserved"), std::string::npos);
  EXPECT_NE(err(key + "buckets: { Bad_Name: {} }").find("3-63 characters"), std::string::npos);
  EXPECT_NE(err("access_keys: [{ access_key: A, secret: s-0123456789abcdef, role: root }]\n"
                "buckets: { b1b: {} }")
                .find("unknown role 'root'"),
            std::string::npos);
  EXPECT_NE(err("buckets: { b1b: {} }").find("access_keys"), std::string::npos);
  EXPECT_NE(err(key).find("buckets"), std::string::npos);
}

}  // namespace
}  // namespace chartflow::http
