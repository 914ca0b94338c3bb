#include "auth/signin_throttle.hpp"

#include <algorithm>
#include <cmath>

#include "store/auth_store.hpp"

namespace chartflow::auth {

std::chrono::seconds sign_in_delay(int failures, int free_failures) {
  if (failures < free_failures) return std::chrono::seconds(0);
  const int doublings = std::min(failures - free_failures, 20);
  const auto delay = kSignInFirstDelay * (std::int64_t{1} << doublings);
  return std::min<std::chrono::seconds>(delay, kSignInMaxDelay);
}

SignInVerdict check_sign_in(Sql& sql, const std::string& name, const std::string& remote) {
  const auto f =
      store::sign_in_failures(sql, name, remote, static_cast<int>(kSignInMemory.count()));
  const double pair_wait = static_cast<double>(sign_in_delay(f.pair).count()) - f.pair_age;
  const double remote_wait =
      static_cast<double>(sign_in_delay(f.remote, kSignInFreeFailuresPerAddress).count()) -
      f.remote_age;
  const double wait = std::max(f.pair > 0 ? pair_wait : 0.0, f.remote > 0 ? remote_wait : 0.0);
  if (wait <= 0) return {};
  return SignInVerdict{false, std::chrono::seconds(static_cast<std::int64_t>(std::ceil(wait)))};
}

void sign_in_failed(Sql& sql, const std::string& name, const std::string& remote) {
  store::record_sign_in_failure(sql, name, remote, static_cast<int>(kSignInMemory.count()));
}

void sign_in_succeeded(Sql& sql, const std::string& name, const std::string& remote) {
  store::clear_sign_in_failures(sql, name, remote);
}

}  // namespace chartflow::auth
