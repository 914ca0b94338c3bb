// Sign-in throttling per (user name, client address) pair, with growing delays: guessing one
// user's password from one address slows down quickly, while the same user signing in from
// anywhere else, and other users from the same address, are not held up. A generous limit per
// address on top stops one address from trying many names. State lives in the database
// (signin_failure), so every process sharing it enforces the same delays. Stateless; safe from
// any thread.
#pragma once

#include <chrono>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::auth {

// Failures of a pair before delays start; the first delay, doubling with each further failure,
// up to the longest; how long a pair's (and an address's) failures are remembered after its
// last one.
inline constexpr int kSignInFreeFailures = 5;
inline constexpr std::chrono::seconds kSignInFirstDelay{15};
inline constexpr std::chrono::seconds kSignInMaxDelay{15 * 60};
inline constexpr std::chrono::seconds kSignInMemory{60 * 60};
// Failures from one address (all names together) before that address waits as well.
inline constexpr int kSignInFreeFailuresPerAddress = 100;

struct SignInVerdict {
  bool allowed = true;
  std::chrono::seconds retry_after{0};  // when refused: how long until the next attempt
};

// `name`: the user name tried ("" for token and code sign-ins); `remote`: the client address.
SignInVerdict check_sign_in(Sql& sql, const std::string& name, const std::string& remote);
void sign_in_failed(Sql& sql, const std::string& name, const std::string& remote);
void sign_in_succeeded(Sql& sql, const std::string& name, const std::string& remote);

// The wait after `failures` failures (0 up to kSignInFreeFailures - 1, then 15 s, 30 s, ... up
// to 15 minutes).
std::chrono::seconds sign_in_delay(int failures, int free_failures = kSignInFreeFailures);

}  // namespace chartflow::auth
