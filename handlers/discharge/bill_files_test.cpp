// Issue #14, finding 15: patient bills were written 0644 into /tmp/chartflow-bills by default,
// following a symlink planted at the bill's name or at its (predictable) temporary name. A bill is
// now written 0600 in a 0700 folder under the data dir, through an O_EXCL|O_NOFOLLOW temporary
// file with an unpredictable name, fsync'd and renamed into place.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "handlers/chart_settings.hpp"
#include "handlers/discharge/bill_channels.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers::discharge {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(BillFilesFinding15, TheFolderIs0700AndTheBill0600WhateverTheUmask) {
  testing::TempDir tmp("cf-bills");
  const mode_t old = ::umask(0);
  const fs::path dir = tmp.path() / "data/bills";
  const std::string err = write_bill_file(dir, "chart-1", "BILL\n");
  ::umask(old);
  ASSERT_EQ(err, "");
  EXPECT_EQ(mode_of(dir), 0700);
  EXPECT_EQ(mode_of(dir / "chart-1-invoice.txt"), 0600);
  EXPECT_EQ(read_all(dir / "chart-1-invoice.txt"), "BILL\n");
  // No temporary file remains beside it, nor after a second bill replacing the first.
  EXPECT_EQ(write_bill_file(dir, "chart-1", "BILL 2\n"), "");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"chart-1-invoice.txt"});
  EXPECT_EQ(read_all(dir / "chart-1-invoice.txt"), "BILL 2\n");
  EXPECT_EQ(mode_of(dir / "chart-1-invoice.txt"), 0600);
}

TEST(BillFilesFinding15, ASymlinkPlantedAtTheBillsNameIsNotFollowed) {
  testing::TempDir tmp("cf-bills");
  const fs::path dir = tmp.path() / "bills";
  fs::create_directories(dir);
  write(tmp.path() / "victim", "untouched");
  fs::create_symlink(tmp.path() / "victim", dir / "chart-1-invoice.txt");
  ASSERT_EQ(write_bill_file(dir, "chart-1", "BILL\n"), "");
  EXPECT_EQ(read_all(tmp.path() / "victim"), "untouched");
  EXPECT_FALSE(fs::is_symlink(fs::symlink_status(dir / "chart-1-invoice.txt")));
  EXPECT_EQ(read_all(dir / "chart-1-invoice.txt"), "BILL\n");
  EXPECT_EQ(mode_of(dir / "chart-1-invoice.txt"), 0600);
}

TEST(BillFilesFinding15, SymlinksPlantedAtGuessableTemporaryNamesAreNotFollowed) {
  testing::TempDir tmp("cf-bills");
  const fs::path dir = tmp.path() / "bills";
  fs::create_directories(dir);
  write(tmp.path() / "victim", "untouched");
  // The names a writer using pid and a counter would pick.
  for (int i = 0; i < 64; ++i)
    fs::create_symlink(tmp.path() / "victim",
                       dir / (".chart-1-invoice.txt." + std::to_string(::getpid()) + "." +
                              std::to_string(i) + ".tmp"));
  for (int i = 0; i < 8; ++i) ASSERT_EQ(write_bill_file(dir, "chart-1", "BILL\n"), "");
  EXPECT_EQ(read_all(tmp.path() / "victim"), "untouched");
  EXPECT_EQ(read_all(dir / "chart-1-invoice.txt"), "BILL\n");
  // Only the planted links and the bill: no temporary file of ours remains.
  std::size_t links = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (fs::is_symlink(e.symlink_status())) ++links;
  EXPECT_EQ(links, 64U);
  EXPECT_EQ(names_in(dir).size(), 65U);
}

TEST(BillFilesFinding15, AFolderLinkOrAFileAtTheFoldersPlaceIsAnError) {
  testing::TempDir tmp("cf-bills");
  write(tmp.path() / "not-a-dir", "x");
  EXPECT_NE(write_bill_file(tmp.path() / "not-a-dir", "chart-1", "BILL\n"), "");
  EXPECT_EQ(read_all(tmp.path() / "not-a-dir"), "x");
}

TEST(BillFilesFinding15, TheShippedDefaultIsUnderTheDataDirAndRelativeDirsFollowTheWorkflows) {
  ::unsetenv("CHARTFLOW_BILL_DIR");
  const fs::path workflows = fs::path(CHARTFLOW_SOURCE_DIR) / "workflows";
  const auto shipped = load_chart_settings(workflows);
  std::string folder;
  for (const auto& c : shipped.bill_delivery.channels)
    if (c.type == "folder") folder = c.dir;
  // ./chartflow-data (serve's default --data-dir) beside the workflows folder, never /tmp.
  EXPECT_EQ(folder, (workflows.parent_path() / "chartflow-data/bills").string());
  // Not the old shared default (the checkout itself may well sit under /tmp, as CI's does).
  EXPECT_NE(folder, "/tmp/chartflow-bills");

  ChartHandlerOptions options;
  options.bill_delivery = Json::parse(R"({"channels": [
      {"name": "rel", "type": "folder", "dir": "../spool/bills"},
      {"name": "abs", "type": "folder", "dir": "/srv/bills"}]})");
  const auto custom = load_chart_settings("/etc/chartflow/workflows", options);
  ASSERT_EQ(custom.bill_delivery.channels.size(), 2U);
  EXPECT_EQ(custom.bill_delivery.channels[0].dir, "/etc/chartflow/spool/bills");
  EXPECT_EQ(custom.bill_delivery.channels[1].dir, "/srv/bills");
}

}  // namespace
}  // namespace chartflow::handlers::discharge
