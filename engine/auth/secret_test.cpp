#include "auth/secret.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "auth/tokens.hpp"
#include "auth/users.hpp"
#include "engine/util/hash.hpp"

namespace chartflow::auth {
namespace {

using util::constant_time_equal;

TEST(SecretTest, SecretsAre32RandomBytesInHexAfterTheirPrefix) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string s = random_secret("cft_");
    EXPECT_TRUE(std::regex_match(s, std::regex("^cft_[0-9a-f]{64}$"))) << s;
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(SecretTest, HashIsHexSha256AndComparisonIsExact) {
  EXPECT_EQ(secret_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(util::constant_time_equal("cfx_1", "cfx_1"));
  EXPECT_FALSE(util::constant_time_equal("cfx_1", "cfx_2"));
  EXPECT_FALSE(util::constant_time_equal("cfx_1", "cfx_10"));
}

TEST(SecretTest, PasswordsAreArgon2idAndOnlyTheRightOneVerifies) {
  const std::string encoded = hash_password("correct horse battery");
  EXPECT_EQ(encoded.rfind("$argon2id$v=19$m=19456,t=2,p=1$", 0), 0u) << encoded;
  EXPECT_EQ(encoded.find("horse"), std::string::npos);
  EXPECT_NE(hash_password("correct horse battery"), encoded) << "salted";
  EXPECT_TRUE(verify_password(encoded, "correct horse battery"));
  EXPECT_FALSE(verify_password(encoded, "correct horse batterY"));
  EXPECT_FALSE(verify_password("not a hash", "x"));
}

TEST(SecretTest, ExpiryDurations) {
  EXPECT_EQ(parse_expiry("30d"), std::chrono::hours(24 * 30));
  EXPECT_EQ(parse_expiry("90m"), std::chrono::minutes(90));
  EXPECT_THROW(parse_expiry("30s"), std::invalid_argument) << "under a minute";
  EXPECT_THROW(parse_expiry("soon"), std::invalid_argument);
}

}  // namespace
}  // namespace chartflow::auth
