#include <gtest/gtest.h>

#include "http/router.hpp"

namespace chartflow::http {
namespace {

TEST(UrlDecode, DecodesTwoHexDigitsAndLeavesEverythingElseAsSent) {
  EXPECT_EQ(url_decode("a%20b%2Fc", false), "a b/c");
  EXPECT_EQ(url_decode("%41%4a%4A", false), "AJJ");
  EXPECT_EQ(url_decode("a+b", true), "a b");
  EXPECT_EQ(url_decode("a+b", false), "a+b");
  // Not a percent-escape: kept verbatim, never turned into some other byte.
  EXPECT_EQ(url_decode("%-1x", false), "%-1x");
  EXPECT_EQ(url_decode("%+f", false), "%+f");
  EXPECT_EQ(url_decode("%zz", false), "%zz");
  EXPECT_EQ(url_decode("%4", false), "%4");
  EXPECT_EQ(url_decode("100%", false), "100%");
}

}  // namespace
}  // namespace chartflow::http
