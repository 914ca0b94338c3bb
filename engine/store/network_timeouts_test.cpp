#include "store/network_timeouts.hpp"

#include <gtest/gtest.h>

namespace chartflow::store {
namespace {

// Finding (#15 item 4): the pool connected with no timeout, so a frozen primary held every
// thread that needed a connection.
TEST(NetworkTimeoutsTest, AUrlGetsEveryTimeoutItLacks) {
  EXPECT_EQ(with_network_timeouts("postgresql://u@h:5432/db"),
            "postgresql://u@h:5432/db?connect_timeout=5&keepalives=1&keepalives_idle=10&"
            "keepalives_interval=5&keepalives_count=3&tcp_user_timeout=20000");
}

TEST(NetworkTimeoutsTest, WhatTheOperatorSetIsKept) {
  const std::string out = with_network_timeouts(
      "postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write&connect_timeout=2");
  EXPECT_NE(out.find("connect_timeout=2"), std::string::npos);
  EXPECT_EQ(out.find("connect_timeout=5"), std::string::npos);
  EXPECT_NE(out.find("&tcp_user_timeout=20000"), std::string::npos);
}

TEST(NetworkTimeoutsTest, KeyValueFormGetsPairs) {
  EXPECT_EQ(with_network_timeouts("host=/tmp dbname=x keepalives=0"),
            "host=/tmp dbname=x keepalives=0 connect_timeout=5 keepalives_idle=10 "
            "keepalives_interval=5 keepalives_count=3 tcp_user_timeout=20000");
}

}  // namespace
}  // namespace chartflow::store
