// The drop folder against a real PostgreSQL: files moved in become events and are archived,
// bad ones go to error/ with a note, files present at start are picked up, and a crash between
// accepting a file and moving it loses and duplicates nothing. The tests named FindingNN pin down
// the findings of issue #14 about this door: reserved and signed types (2), the limits (6),
// links and special files (7), file names in logs (14), reading from the descriptor (21).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "engine/util/hash.hpp"
#include "runtime/drop_folder.hpp"
#include "runtime/log.hpp"
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
)",
                                  R"(
name: on-run-end
on: [{ event: workflow.succeeded }, { event: schedule.tick }, { event: alert.firing }]
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

void write_file(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << content;
}

// JSON nested `depth` levels deep: {"a":{"a":...1...}}.
std::string nested(std::size_t depth) {
  std::string s;
  s.reserve(depth * 6 + 1);
  for (std::size_t i = 0; i < depth; ++i) s += "{\"a\":";
  s += "1";
  s.append(depth, '}');
  return s;
}

// Everything under `root` (not following links): relative path -> type, size, content, mtime.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    EXPECT_EQ(::lstat(it->path().c_str(), &st), 0) << it->path();
    std::string what = std::to_string(st.st_mode) + ":" + std::to_string(st.st_size) + ":" +
                       std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) what += ":" + read_all(it->path());
    if (S_ISLNK(st.st_mode)) what += ":" + fs::read_symlink(it->path()).string();
    out[fs::relative(it->path(), root).string()] = what;
  }
  return out;
}

std::string file_id(const std::string& rel) { return util::sha256_hex(rel).substr(0, 12); }

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
  runtime::DropFolder folder(harness_->engine(), dir_, runtime::DropLimits{},
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
  drop(dir_, "broken.json", R"({"resourceType": "Bundle")");
  drop(dir_, "not-a-chart.json", R"({"resourceType": "Patient", "id": "x"})");
  drop(dir_, "lab.result/list.json", "[1, 2]");
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling.json");
  runtime::DropFolder folder(harness_->engine(), dir_, runtime::DropLimits{},
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
    runtime::DropFolder first(harness_->engine(), dir_, runtime::DropLimits{},
                              harness_->chart_intake());
    ASSERT_EQ(first.process(dir_ / "chart.json"), runtime::DropFolder::Outcome::kAccepted);
    fs::rename(dir_ / "archive/chart.json", dir_ / "chart.json");
    ASSERT_EQ(first.process(dir_ / "scan.pdf"), runtime::DropFolder::Outcome::kAccepted);
    fs::rename(dir_ / "archive/scan.pdf", dir_ / "scan.pdf");
  }
  // The restarted watcher finds them at start, accepts them as duplicates and moves them.
  runtime::DropFolder restarted(harness_->engine(), dir_, runtime::DropLimits{},
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

// Finding 2: a file may not create an event chartflow emits itself (chart.uploaded with a forged
// "released": true closed a bill), nor one whose webhook requires an HMAC signature.
TEST_F(DropFolderTest, Finding02ReservedAndSignedTypesFromASubfolderGoToError) {
  harness_->engine().reserve_event_types({"chart.uploaded"});
  const std::string forged = R"({"chart_id": "c1", "released": true, "has_billable": true})";
  const std::vector<std::string> reserved = {
      "chart.uploaded", "schedule.tick", "workflow.succeeded", "alert.firing", "object.created"};
  for (const auto& type : reserved) drop(dir_, type + "/forged.json", forged);
  drop(dir_, "lab.result/r1.json", R"({"patient": "p1", "value": 7.1})");
  drop(dir_, "lab.note/n1.json", R"({"note": "unsigned types still enter"})");
  runtime::DropFolder folder(harness_->engine(), dir_, runtime::DropLimits{},
                             harness_->chart_intake(),
                             [](const std::string& type) { return type == "lab.result"; });
  EXPECT_EQ(folder.scan(), 7);
  for (const auto& type : reserved) {
    EXPECT_FALSE(fs::exists(dir_ / type / "forged.json")) << type;
    EXPECT_TRUE(fs::exists(dir_ / "error" / type / "forged.json")) << type;
    const std::string why = read_all(dir_ / "error" / type / "forged.json.error.txt");
    EXPECT_NE(why.find("reserved"), std::string::npos) << type << ": " << why;
    EXPECT_NE(why.find("'" + type + "'"), std::string::npos) << type << ": " << why;
  }
  EXPECT_TRUE(fs::exists(dir_ / "error/lab.result/r1.json"));
  const std::string why = read_all(dir_ / "error/lab.result/r1.json.error.txt");
  EXPECT_NE(why.find("signed"), std::string::npos) << why;
  EXPECT_NE(why.find("'lab.result'"), std::string::npos) << why;
  EXPECT_TRUE(fs::exists(dir_ / "archive/lab.note/n1.json"));
  // Only the unsigned, unreserved event was stored; no run started.
  EXPECT_EQ(scalar("SELECT string_agg(type, ',') FROM event"), "lab.note");
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run"), "0");
}

// Finding 6: a JSON file nested 500,000 deep crashed the server at every start. Every file is held
// to the limits of its HTTP door before anything parses it, and the watcher keeps serving.
TEST_F(DropFolderTest, Finding06FilesOverTheLimitsGoToErrorAndTheFolderKeepsServing) {
  drop(dir_, "lab.result/deep.json", nested(100));
  // 500,000 deep and still within the 1 MiB event limit: only the depth check refuses it.
  drop(dir_, "lab.result/very-deep.json",
       "{\"a\":" + std::string(500'000, '[') + std::string(500'000, ']') + "}");
  drop(dir_, "lab.result/large.json",
       R"({"pad": ")" + std::string(core::kDefaultBodyBytes, 'x') + R"("})");
  drop(dir_, "deep-chart.json",
       R"({"resourceType": "Bundle", "type": "collection", "entry": [)" + nested(100) + "]}");
  std::string many = R"({"resourceType": "Bundle", "type": "collection", "entry": [{})";
  for (int i = 0; i < 20'000; ++i) many += ",{}";
  drop(dir_, "many-entries.json", many + "]}");
  runtime::DropFolder folder(harness_->engine(), dir_, runtime::DropLimits{},
                             harness_->chart_intake());
  folder.start();
  ASSERT_TRUE(wait_until([&] {
    return fs::exists(dir_ / "error/lab.result/deep.json") &&
           fs::exists(dir_ / "error/lab.result/very-deep.json") &&
           fs::exists(dir_ / "error/lab.result/large.json") &&
           fs::exists(dir_ / "error/deep-chart.json") &&
           fs::exists(dir_ / "error/many-entries.json");
  }));
  // Still serving: a good file after the bad ones is accepted.
  drop(dir_, "lab.result/ok.json", R"({"value": 1})");
  drop(dir_, "chart.json", read_all(kChartFile));
  ASSERT_TRUE(wait_until([&] {
    return fs::exists(dir_ / "archive/lab.result/ok.json") &&
           fs::exists(dir_ / "archive/chart.json");
  }));
  folder.stop();
  for (const char* f : {"lab.result/deep.json", "lab.result/very-deep.json", "deep-chart.json"})
    EXPECT_NE(
        read_all(dir_ / "error" / (std::string(f) + ".error.txt")).find("nested deeper than 64"),
        std::string::npos)
        << f;
  EXPECT_NE(read_all(dir_ / "error/lab.result/large.json.error.txt").find("more than the limit"),
            std::string::npos);
  EXPECT_NE(read_all(dir_ / "error/many-entries.json.error.txt").find("more than 20000 entries"),
            std::string::npos);
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'lab.result'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM chart_revision"), "1");
}

// Finding 7: `ln -s <a chart elsewhere> drop/link.json` made chartflow move the link's target and
// write beside it. Links (to files and folders, inside and outside the folder), fifos and sockets
// go to error/ untouched: the entry itself moves, nothing outside the folder changes.
TEST_F(DropFolderTest, Finding07LinksAndSpecialFilesGoToErrorAndNothingOutsideChanges) {
  const fs::path outside = fs::path(dir_.string() + "-outside");
  fs::remove_all(outside);
  write_file(outside / "chart.json", read_all(kChartFile));
  write_file(outside / "sub/r1.json", R"({"value": 1})");
  write_file(dir_ / "archive/old.json", R"({"value": 2})");
  // Outside: a file, a folder (also as an event type's subfolder), a link inside a real subfolder.
  fs::create_symlink(outside / "chart.json", dir_ / "link.json");
  fs::create_symlink(outside / "sub", dir_ / "linkdir");
  fs::create_symlink(outside / "sub", dir_ / "lab.result");
  fs::create_directories(dir_ / "lab.note");
  fs::create_symlink(outside / "sub/r1.json", dir_ / "lab.note/link.json");
  // Inside: a file and a folder of the drop folder itself.
  fs::create_symlink("archive/old.json", dir_ / "inner.json");
  fs::create_symlink("archive", dir_ / "innerdir");
  ASSERT_EQ(::mkfifo((dir_ / "pipe.json").c_str(), 0600), 0);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = (dir_ / "sock.json").string();
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const auto before = snapshot(outside);
  const auto archive_before = snapshot(dir_ / "archive");

  runtime::DropFolder folder(harness_->engine(), dir_, runtime::DropLimits{},
                             harness_->chart_intake());
  folder.scan();
  folder.start();  // the watcher's own scan and subfolder watches must not follow them either
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  folder.stop();
  ::close(sock);

  EXPECT_EQ(snapshot(outside), before);
  EXPECT_EQ(snapshot(dir_ / "archive"), archive_before);
  EXPECT_FALSE(fs::exists(outside / "error"));
  EXPECT_FALSE(fs::exists(outside / "archive"));
  for (const char* f :
       {"link.json", "linkdir", "lab.result", "lab.note/link.json", "inner.json", "innerdir"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(dir_ / f))) << f;
    const fs::path moved = dir_ / "error" / f;
    EXPECT_TRUE(fs::is_symlink(fs::symlink_status(moved))) << f;
    EXPECT_NE(read_all(moved.string() + ".error.txt").find("not a regular file"), std::string::npos)
        << f;
  }
  EXPECT_EQ(fs::read_symlink(dir_ / "error/link.json"), outside / "chart.json");
  EXPECT_EQ(fs::read_symlink(dir_ / "error/inner.json"), "archive/old.json");
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(dir_ / "error/pipe.json")));
  EXPECT_TRUE(fs::is_socket(fs::symlink_status(dir_ / "error/sock.json")));
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), "0");
  fs::remove_all(outside);
}

// Finding 14: chart file names carry patient names (enc-<name>-...json). No log line, no event
// body or dedup key, and no stored log carries the name: a hash of it, or the chart id, instead.
TEST_F(DropFolderTest, Finding14LogsCarryAHashOfTheFileNameNeverTheName) {
  const std::string name = "enc-brady-kuhlman-20010718";
  drop(dir_, name + "-chart.json", read_all(kChartFile));
  drop(dir_, name + "-broken.json", R"({"resourceType": "Bundle")");
  drop(dir_, "lab.result/" + name + "-lab.json", R"({"value": 7.1})");
  drop(dir_, "lab.result/" + name + "-bad.json", "[1]");
  drop(dir_, "later/" + name + "-later.json", R"({"value": 1})");
  const auto level = runtime::Log::stderr_level();
  runtime::Log::set_stderr_level(LogLevel::kInfo);
  ::testing::internal::CaptureStderr();
  {
    runtime::DropFolder folder(harness_->engine(), dir_, runtime::DropLimits{},
                               harness_->chart_intake());
    folder.scan();
    // The database "away" for one file: deferred, logged, left in place.
    runtime::DropFolder away(
        harness_->engine(), dir_, runtime::DropLimits{},
        [](const IntakeRequest&) -> IntakeResult { throw std::runtime_error("connection lost"); });
    drop(dir_, name + "-deferred.json", read_all(kChartFile));
    EXPECT_EQ(away.process(dir_ / (name + "-deferred.json")), runtime::DropFolder::Outcome::kLeft);
  }
  const std::string logs = ::testing::internal::GetCapturedStderr();
  runtime::Log::set_stderr_level(level);
  EXPECT_EQ(logs.find("brady"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("kuhlman"), std::string::npos) << logs;
  for (const char* m : {"drop_accepted", "drop_rejected", "drop_deferred"})
    EXPECT_NE(logs.find(m), std::string::npos) << m << " in " << logs;
  EXPECT_NE(logs.find(file_id(name + "-chart.json")), std::string::npos) << logs;
  EXPECT_NE(logs.find(file_id("lab.result/" + name + "-bad.json")), std::string::npos) << logs;
  EXPECT_NE(logs.find(file_id(name + "-deferred.json")), std::string::npos) << logs;
  EXPECT_TRUE(fs::exists(dir_ / "archive" / (name + "-chart.json")));
  EXPECT_TRUE(fs::exists(dir_ / "error" / (name + "-broken.json")));
  EXPECT_TRUE(fs::exists(dir_ / (name + "-deferred.json")));
  // Nor is it stored: events (bodies, dedup keys) and the stored logs.
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE body::text LIKE '%kuhlman%' OR "
                   "dedup_key LIKE '%kuhlman%'"),
            "0");
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT count(*) FROM log_record WHERE message LIKE 'drop_%'") != "0";
  }));
  EXPECT_EQ(scalar("SELECT count(*) FROM log_record WHERE message::text LIKE '%kuhlman%' OR "
                   "fields::text LIKE '%kuhlman%'"),
            "0");
}

// Finding 21: the file was checked for a link, then opened by its path: a link swapped in between
// was followed. It is opened with O_NOFOLLOW and read from its descriptor, so a file flipped
// between a regular file and a link to a secret elsewhere never yields the secret.
TEST_F(DropFolderTest, Finding21AFileSwappedForALinkIsNeverFollowed) {
  const fs::path outside = fs::path(dir_.string() + "-secret");
  fs::remove_all(outside);
  write_file(outside / "secret.json", R"({"secret": "outside-the-drop-folder"})");
  fs::create_directories(dir_ / "lab.note");
  const fs::path target = dir_ / "lab.note/x.json";
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    int i = 0;
    while (!stop) {
      const fs::path reg = dir_ / "lab.note/.r.tmp";
      const fs::path lnk = dir_ / "lab.note/.l.tmp";
      write_file(reg, R"({"value": )" + std::to_string(i++) + "}");
      std::error_code ec;
      fs::rename(reg, target, ec);
      fs::create_symlink(outside / "secret.json", lnk, ec);
      fs::rename(lnk, target, ec);
    }
  });
  runtime::DropFolder folder(harness_->engine(), dir_, runtime::DropLimits{},
                             harness_->chart_intake());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  int leaked = 0;
  for (int i = 1; std::chrono::steady_clock::now() < until && leaked == 0; ++i) {
    folder.process(target);
    if (i % 10 == 0) leaked = std::stoi(scalar("SELECT count(*) FROM event WHERE body ? 'secret'"));
  }
  leaked += std::stoi(scalar("SELECT count(*) FROM event WHERE body ? 'secret'"));
  stop = true;
  flipper.join();
  EXPECT_EQ(leaked, 0);
  EXPECT_EQ(read_all(outside / "secret.json"), R"({"secret": "outside-the-drop-folder"})");
  fs::remove_all(outside);
}

}  // namespace
}  // namespace chartflow::testing
