// chartflow.yaml, CHARTFLOW_* variables and flags folded into the settings serve runs with
// (issue #16, item 5), and every option in `serve --help` (paper cuts).
#include "app/settings.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "app/options.hpp"

namespace chartflow::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class SettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("chartflow-settings-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    for (const auto& name : set_) ::unsetenv(name.c_str());
    fs::remove_all(dir_);
  }
  std::string write(const std::string& text) {
    const auto file = dir_ / "chartflow.yaml";
    std::ofstream(file) << text;
    return file.string();
  }
  void setenv(const std::string& name, const std::string& value) {
    ::setenv(name.c_str(), value.c_str(), 1);
    set_.push_back(name);
  }
  static Args flags(std::map<std::string, std::string> options) {
    Args a;
    a.options = std::move(options);
    return a;
  }
  static std::string error_of(const Args& args, bool with_api = true) {
    try {
      resolve_settings(args, with_api);
    } catch (const SettingsError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  std::vector<std::string> set_;
};

TEST_F(SettingsTest, FileSetsWhatNoFlagOrVariableSets) {
  const auto file = write("listen: 127.0.0.1:9000\nworkers: 6\nupload-limit: 64M\n");
  const auto s = resolve_settings(flags({{"config", file}}), true);
  EXPECT_EQ(s.args.get("listen"), "127.0.0.1:9000");
  EXPECT_EQ(s.args.get("workers"), "6");
  EXPECT_EQ(s.args.get("upload-limit"), "64M");
  EXPECT_EQ(s.source.at("listen"), file + ":1");
  EXPECT_EQ(s.source.at("upload-limit"), file + ":3");
  ASSERT_TRUE(s.file);
  EXPECT_EQ(s.file->string(), file);
}

TEST_F(SettingsTest, VariableBeatsFileAndFlagBeatsVariable) {
  const auto file = write("listen: 127.0.0.1:9000\nworkers: 6\n");
  setenv("CHARTFLOW_LISTEN", "127.0.0.1:9001");
  setenv("CHARTFLOW_WORKERS", "7");
  const auto s = resolve_settings(flags({{"config", file}, {"workers", "8"}}), true);
  EXPECT_EQ(s.args.get("listen"), "127.0.0.1:9001");
  EXPECT_EQ(s.source.at("listen"), "CHARTFLOW_LISTEN");
  EXPECT_EQ(s.args.get("workers"), "8");
  EXPECT_EQ(s.source.at("workers"), "flag");
}

TEST_F(SettingsTest, ConfigFileNamedByVariable) {
  const auto file = write("poll-ms: 250\n");
  setenv("CHARTFLOW_CONFIG", file);
  EXPECT_EQ(resolve_settings({}, true).args.get("poll-ms"), "250");
}

// --database-url-file given as a flag must not lose to CHARTFLOW_DATABASE_URL, and a variable
// for either database option hides the file's choice of the other.
TEST_F(SettingsTest, DatabaseOptionsComeFromOneSource) {
  const auto file = write("database-url-file: /etc/chartflow/db-url\n");
  setenv("CHARTFLOW_DATABASE_URL", "postgresql://env@db/chartflow");
  auto s = resolve_settings(flags({{"config", file}}), true);
  EXPECT_EQ(s.args.get("database-url"), "postgresql://env@db/chartflow");
  EXPECT_FALSE(s.args.get("database-url-file"));

  s = resolve_settings(flags({{"config", file}, {"database-url-file", "/run/flag-url"}}), true);
  EXPECT_EQ(s.args.get("database-url-file"), "/run/flag-url");
  EXPECT_FALSE(s.args.get("database-url"));
}

TEST_F(SettingsTest, FlagOffInFileIsAbsent) {
  const auto file = write("public-metrics: false\ninsecure-listen: true\n");
  const auto s = resolve_settings(flags({{"config", file}}), true);
  EXPECT_FALSE(s.args.get("public-metrics"));
  EXPECT_EQ(s.args.get("insecure-listen"), "true");
}

TEST_F(SettingsTest, UnknownKeyNamesFileLineAndSuggests) {
  const auto file = write("listen: 127.0.0.1:9000\n\nuplod-limit: 8M\n");
  EXPECT_EQ(error_of(flags({{"config", file}})),
            file + ":3: unknown setting 'uplod-limit' (did you mean 'upload-limit'?)");
}

TEST_F(SettingsTest, WrongKindNamesFileAndLine) {
  const auto file = write("workers: many\n");
  EXPECT_EQ(error_of(flags({{"config", file}})),
            file + ":1: workers must be a whole number, got 'many'");
  const auto file2 = write("db-call-timeout: soon\n");
  EXPECT_THAT(error_of(flags({{"config", file2}})),
              HasSubstr(file2 + ":1: db-call-timeout must be a duration"));
  const auto file3 = write("listen: [a, b]\n");
  EXPECT_THAT(error_of(flags({{"config", file3}})), HasSubstr(file3 + ":1: listen must be"));
}

TEST_F(SettingsTest, BrokenYamlNamesFileAndLine) {
  const auto file = write("listen: 127.0.0.1:9000\nworkers: [1,\n");
  EXPECT_THAT(error_of(flags({{"config", file}})), HasSubstr(file + ":"));
  EXPECT_THAT(error_of(flags({{"config", (dir_ / "missing.yaml").string()}})),
              HasSubstr("missing.yaml: cannot read the config file"));
}

TEST_F(SettingsTest, WrongVariableIsNamed) {
  setenv("CHARTFLOW_BATCH_SIZE", "lots");
  EXPECT_EQ(error_of({}), "CHARTFLOW_BATCH_SIZE must be a whole number, got 'lots'");
}

TEST_F(SettingsTest, UnknownFlagIsRefused) {
  EXPECT_EQ(error_of(flags({{"worker", "4"}})),
            "unknown option --worker (did you mean 'workers'?); chartflow serve --help lists them");
  EXPECT_EQ(error_of(flags({{"listen", "127.0.0.1:1"}}), /*with_api=*/false),
            "--listen is not an option of chartflow worker");
}

// serve and worker share one file: a key only serve reads is no error for worker.
TEST_F(SettingsTest, WorkerIgnoresServeKeys) {
  const auto file = write("listen: 127.0.0.1:9000\nconcurrency: 3\n");
  const auto s = resolve_settings(flags({{"config", file}}), false);
  EXPECT_FALSE(s.args.get("listen"));
  EXPECT_EQ(s.args.get("concurrency"), "3");
}

TEST_F(SettingsTest, StartupErrorsPointAtTheirSource) {
  const auto file = write("workers: 2\nlisten: nowhere\n");
  setenv("CHARTFLOW_UPLOAD_SLOTS", "0");
  const auto s = resolve_settings(flags({{"config", file}}), true);
  EXPECT_EQ(locate(s, "--listen must be HOST:PORT, got 'nowhere'"),
            file + ":2: listen must be HOST:PORT, got 'nowhere'");
  EXPECT_EQ(locate(s, "--upload-slots must be positive"),
            "CHARTFLOW_UPLOAD_SLOTS must be positive");
  EXPECT_EQ(locate(s, "something else"), "something else");
}

TEST_F(SettingsTest, UsageListsEveryOption) {
  const std::string serve = server_usage(true);
  for (const auto& o : server_options()) {
    if ((o.use & kServe) == 0) continue;
    EXPECT_THAT(serve, HasSubstr("--" + std::string(o.name) + " ")) << o.name;
  }
  // The options the first-day review found missing from the usage.
  for (const char* name : {"--log-level", "--lease-ms", "--poll-ms", "--log-retention-days"}) {
    EXPECT_THAT(serve, HasSubstr(name));
    EXPECT_THAT(server_usage(false), HasSubstr(name));
  }
}

TEST_F(SettingsTest, PasswordsAreRedacted) {
  EXPECT_EQ(redact_url("postgresql://app:s3cret@db:5432/chartflow"),
            "postgresql://app:***@db:5432/chartflow");
  EXPECT_EQ(redact_url("host=db password=s3cret dbname=x"), "host=db password=*** dbname=x");
  EXPECT_EQ(redact_url("postgresql://db/x?password=s3cret&sslmode=require"),
            "postgresql://db/x?password=***&sslmode=require");
  EXPECT_EQ(redact_url("postgresql://app@db/x"), "postgresql://app@db/x");
}

}  // namespace
}  // namespace chartflow::cli
