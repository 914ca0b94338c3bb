#include "store/secret_redaction.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "store/store.hpp"

namespace chartflow::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(SecretRedaction, FindsPasswordsInEveryConnectionStringForm) {
  EXPECT_THAT(dsn_passwords("postgresql://app:s3cr%40t@db:5432/cf"),
              ::testing::UnorderedElementsAre("s3cr%40t", "s3cr@t"));
  EXPECT_THAT(dsn_passwords("postgres://db/cf?user=app&password=hunter22&sslmode=require"),
              ::testing::ElementsAre("hunter22"));
  EXPECT_THAT(dsn_passwords(R"(host=db user=app password='it\'s secret' dbname=cf)"),
              ::testing::IsSupersetOf({R"(it\'s secret)", "it's secret"}));
  EXPECT_THAT(dsn_passwords("host=db password = plain dbname=cf"), ::testing::ElementsAre("plain"));
  EXPECT_TRUE(dsn_passwords("postgresql://app@db/cf").empty());
}

TEST(SecretRedaction, RedactsTheDsnPasswordAndAnyQuotedOne) {
  const std::string dsn = "postgresql://app:Tr0ub4dor@db/cf";
  EXPECT_EQ(redact_secrets("bad URI: \"postgresql://app:Tr0ub4dor@[db\"", dsn),
            "bad URI: \"postgresql://app:[redacted]@[db\"");
  EXPECT_EQ(redact_secrets("echoed Tr0ub4dor twice: Tr0ub4dor", dsn),
            "echoed [redacted] twice: [redacted]");
  EXPECT_EQ(redact_secrets("other https://u:pw1@host/x and password=xyz"),
            "other https://u:[redacted]@host/x and password=[redacted]");
  EXPECT_EQ(redact_secrets("nothing secret here", dsn), "nothing secret here");
}

// libpq quotes a malformed URI whole in its error; the Store's message must not carry the
// password, but must still say what is wrong.
TEST(SecretRedaction, ConnectionFailuresNeverShowThePassword) {
  const std::string password = "Sup3rS3cretPw";
  struct Case {
    std::string dsn;
    std::string says;  // what the message must still tell the operator
  };
  const std::vector<Case> cases = {
      // libpq echoes this URI whole: the message shows that it was redacted, not absent.
      {"postgresql://chartflow:" + password + "@[::1/chartflow", "[redacted]"},
      {"postgresql://chartflow:" + password + "@127.0.0.1:1/chartflow?connect_timeout=2",
       "127.0.0.1"},
      {"host=127.0.0.1 port=1 password=" + password + " connect_timeout=2 bogus", "bogus"},
      {"host=127.0.0.1 port=1 password='" + password, "unterminated quoted string"},
  };
  for (const auto& c : cases) {
    try {
      Store s(c.dsn);
      ADD_FAILURE() << "connected with " << redact_secrets(c.dsn);
    } catch (const std::exception& e) {
      const std::string message = e.what();
      EXPECT_THAT(message, Not(HasSubstr(password))) << message;
      EXPECT_THAT(message, HasSubstr(c.says));
    }
  }
}

}  // namespace
}  // namespace chartflow::store
