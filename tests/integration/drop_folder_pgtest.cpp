// The drop folder against a real PostgreSQL: files moved in become events and are archived,
// bad ones go to error/ with a note, files present at start are picked up, and a crash between
// accepting a file and moving it loses and duplicates nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "runtime/drop_folder.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;

const std::string kChartFile = std::string(CHARTFLOW_SOURCE_DIR) +
                               "/tests/data/charts/"
                               "enc-brady-kuhlman-20010718-imp-encounter-inpatient-224a9d89.json";

const std::string kWorkflows[] = {R"(
name: on-chart
on: [{ event: chart.uploaded }]
steps:
  a: { handler: noop }
)",
                                  R"(
name: on-object
on: [{ event: object.created }]
steps:
  a: { handler: noop }
)",
                                  R"(
name: on-lab
on: [{ event: lab.result }]
steps:
  a: { handler: noop }
)"};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `content` beside the folder, then moves it in, as a careful producer does.
void drop(const fs::path& dir, const std::string& rel, const std::string& content) {
  const fs::path tmp = dir / ("." + fs::path(rel).filename().string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary);
    out << content;
  }
  fs::create_directories((dir / rel).parent_path());
  fs::rename(tmp, dir / rel);
}

class DropFolderTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = fs::temp_directory_path() / ("cf-drop-" + schema());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    harness_ = std::make_unique<EngineHarness>(
        dsn(), std::vector<std::string>(std::begin(kWorkflows), std::end(kWorkflows)));
    harness_->start();
  }
  void TearDown() override {
    harness_.reset();
    fs::remove_all(dir_);
    PgTest::TearDown();
  }
  std::string runs(const std::string& workflow) {
    return scalar("SELECT count(*) FROM workflow_run WHERE workflow = '" + workflow + "'");
  }

  fs::path dir_;
  std::unique_ptr<EngineHarness> harness_;
};

TEST_F(DropFolderTest, FilesMovedInBecomeEventsAndAreArchived) {
  runtime::DropFolder folder(harness_->engine(), dir_, runtime::kDefaultDropMaxBytes,
                             harness_->chart_intake());
  folder.start();
  drop(dir_, "chart.json", read_all(kChartFile));
  drop(dir_, "scan-0001.pdf", "%PDF-1.4 not really");
  drop(dir_, "lab.result/r1.json", R"({"patient": "p1", "value": 7.1})");
  ASSERT_TRUE(wait_until([&] {
    return fs::exists(dir_ / "archive/chart.json") && fs::exists(dir_ / "archive/scan-0001.pdf") &&
           fs::exists(dir_ / "archive/lab.result/r1.json");
  }));
  folder.stop();
  EXPECT_FALSE(fs::exists(dir_ / "chart.json"));
  EXPECT_EQ(runs("on-chart"), "1");
  EXPECT_EQ(scalar("SELECT source FROM event WHERE type = 'chart.uploaded'"), "drop");
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
  EXPECT_EQ(runs("on-object"), "1");
  const Json obj = Json::parse(scalar("SELECT body FROM event WHERE type = 'object.created'"));
  EXPECT_EQ(obj.at("key"), "scan-0001.pdf");
  EXPECT_EQ(obj.at("size"), 19);
  EXPECT_EQ(obj.at("sha256").get<std::string>().size(), 64U);
  EXPECT_EQ(runs("on-lab"), "1");
  EXPECT_EQ(Json::parse(scalar("SELECT body FROM event WHERE type = 'lab.result'")).at("value"),
            7.1);
}

TEST_F(DropFolderTest, BadFilesGoToErrorWithANoteAndStoreNothing) {
  drop(dir_, "broken.json", "{\"resourceType\": \"Bundle\"");
  drop(dir_, "not-a-chart.json", R"({"resourceType": "Patient", "id": "x"})");
  drop(dir_, "lab.result/list.json", "[1, 2]");
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling.json");
  runtime::DropFolder folder(harness_->engine(), dir_, runtime::kDefaultDropMaxBytes,
                             harness_->chart_intake());
  EXPECT_EQ(folder.scan(), 4);
  for (const char* f :
       {"broken.json", "not-a-chart.json", "lab.result/list.json", "dangling.json"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(dir_ / f))) << f;
    EXPECT_TRUE(fs::exists(fs::symlink_status(dir_ / "error" / f))) << f;
  }
  EXPECT_NE(read_all(dir_ / "error/broken.json.error.txt").find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(read_all(dir_ / "error/not-a-chart.json.error.txt").find("Bundle"), std::string::npos);
  EXPECT_NE(read_all(dir_ / "error/lab.result/list.json.error.txt").find("JSON object"),
            std::string::npos);
  EXPECT_NE(read_all(dir_ / "error/dangling.json.error.txt").find("not a regular file"),
            std::string::npos);
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), "0");
}

TEST_F(DropFolderTest, FilesPresentAtStartAndACrashBeforeTheMoveLoseAndDuplicateNothing) {
  drop(dir_, "chart.json", read_all(kChartFile));
  drop(dir_, "scan.pdf", "pdf bytes");
  {
    // The "crash": both files were accepted (their events committed) but never moved.
    runtime::DropFolder first(harness_->engine(), dir_, runtime::kDefaultDropMaxBytes,
                              harness_->chart_intake());
    ASSERT_EQ(first.process(dir_ / "chart.json"), runtime::DropFolder::Outcome::kAccepted);
    fs::rename(dir_ / "archive/chart.json", dir_ / "chart.json");
    ASSERT_EQ(first.process(dir_ / "scan.pdf"), runtime::DropFolder::Outcome::kAccepted);
    fs::rename(dir_ / "archive/scan.pdf", dir_ / "scan.pdf");
  }
  // The restarted watcher finds them at start, accepts them as duplicates and moves them.
  runtime::DropFolder restarted(harness_->engine(), dir_, runtime::kDefaultDropMaxBytes,
                                harness_->chart_intake());
  restarted.start();
  ASSERT_TRUE(wait_until(
      [&] { return !fs::exists(dir_ / "chart.json") && !fs::exists(dir_ / "scan.pdf"); }));
  restarted.stop();
  EXPECT_TRUE(fs::exists(dir_ / "archive/chart.json"));
  EXPECT_TRUE(fs::exists(dir_ / "archive/scan.pdf"));
  EXPECT_EQ(runs("on-chart"), "1");
  EXPECT_EQ(runs("on-object"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
}

}  // namespace
}  // namespace chartflow::testing
