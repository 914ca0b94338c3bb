#include "engine/util/secret_box.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

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
