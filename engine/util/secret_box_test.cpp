#include "engine/util/secret_box.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace chartflow::util {
namespace {

SecretBox box_of(char fill) { return SecretBox::from_key(std::string(SecretBox::kKeyBytes, fill)); }

TEST(SecretBox, SealedValuesOpenOnlyWithTheirKeyAndContext) {
  const SecretBox box = box_of('a');
  const std::string sealed = box.seal("Authorization: Bearer s3cret", "table.column");
  EXPECT_TRUE(SecretBox::is_sealed(sealed));
  EXPECT_EQ(sealed.find("s3cret"), std::string::npos);
  EXPECT_NE(sealed, box.seal("Authorization: Bearer s3cret", "table.column"))  // fresh nonce
      << "two seals of one value must differ";
  EXPECT_EQ(box.open(sealed, "table.column"), "Authorization: Bearer s3cret");
  EXPECT_THROW(box.open(sealed, "other.column"), SecretBoxError);
  try {
    (void)box_of('b').open(sealed, "table.column");
    FAIL() << "another key opened it";
  } catch (const SecretBoxError& e) {
    EXPECT_NE(std::string(e.what()).find(box.key_id()), std::string::npos) << e.what();
  }
  std::string altered = sealed;
  altered.back() = altered.back() == '0' ? '1' : '0';
  EXPECT_THROW(box.open(altered, "table.column"), SecretBoxError);
  EXPECT_THROW(box.open("plain text", "table.column"), SecretBoxError);
}

TEST(SecretBox, AMissingKeyFileIsMadePrivateAndReadBackTheSame) {
  chartflow::testing::TempDir dir("secret-box");
  const auto file = dir.path() / "secrets.key";
  const SecretBox made = SecretBox::load_or_create(file);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const SecretBox again = SecretBox::load_or_create(file);
  EXPECT_EQ(made.key_id(), again.key_id());
  EXPECT_EQ(again.open(made.seal("x", "c"), "c"), "x");
}

// Processes starting at once on a new deployment: one makes the key, every other reads that
// same key whole (never a half-written file), and no temporary file is left behind.
TEST(SecretBox, StartsAtOnceAllGetTheOneKeyMade) {
  for (int round = 0; round < 20; ++round) {
    chartflow::testing::TempDir dir("secret-box");
    const auto file = dir.path() / "secrets.key";
    constexpr int kStarts = 6;
    std::vector<std::string> ids(kStarts);
    std::vector<std::string> errors(kStarts);
    std::atomic<int> created{0};
    std::vector<std::thread> starts;
    starts.reserve(kStarts);
    for (int i = 0; i < kStarts; ++i)
      starts.emplace_back([&, i] {
        try {
          bool made = false;
          ids[i] = SecretBox::load_or_create(file, &made).key_id();
          if (made) ++created;
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    for (auto& t : starts) t.join();
    for (int i = 0; i < kStarts; ++i) {
      EXPECT_EQ(errors[i], "") << "round " << round;
      EXPECT_EQ(ids[i], ids[0]) << "round " << round;
    }
    EXPECT_EQ(created.load(), 1) << "round " << round;
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                            std::filesystem::directory_iterator()),
              1)
        << "a temporary key file was left behind";
  }
}

TEST(SecretBox, AKeyFileOthersMayReadOrWithoutAKeyIsRefusedByName) {
  chartflow::testing::TempDir dir("secret-box");
  const auto file = dir.path() / "secrets.key";
  { std::ofstream(file) << std::string(64, 'f') << "\n"; }
  ::chmod(file.c_str(), 0644);
  try {
    (void)SecretBox::load_or_create(file);
    FAIL() << "a world-readable key was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  ::chmod(file.c_str(), 0600);
  EXPECT_NO_THROW((void)SecretBox::load_or_create(file));
  { std::ofstream(file) << "not a key\n"; }
  EXPECT_THROW((void)SecretBox::load_or_create(file), std::runtime_error);
}

}  // namespace
}  // namespace chartflow::util
