#include "tests/support/auth_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

#include "auth/tokens.hpp"
#include "store/store.hpp"
#include "tests/support/child_process.hpp"

namespace chartflow::testing {

std::string create_token(const std::string& dsn, const std::string& role,
                         std::optional<std::string> assignee, std::optional<std::string> name) {
  static std::atomic<int> counter{0};
  auth::TokenSpec spec;
  spec.role = role;
  spec.name = name.value_or("test-" + role + "-" + std::to_string(++counter));
  spec.assignee = std::move(assignee);
  spec.created_by = "test";
  store::Store store(dsn);
  std::string token;
  store.with_sql([&](Sql& sql) { token = auth::create_token(sql, spec).token; });
  return token;
}

std::string create_token_cli(const std::vector<std::string>& db_args, const std::string& role,
                             const std::string& name, const std::filesystem::path& log) {
  std::vector<std::string> argv = {CHARTFLOW_BINARY, "tokens", "create", "--role", role,
                                   "--name",         name};
  argv.insert(argv.end(), db_args.begin(), db_args.end());
  const auto err = std::filesystem::path(log.string() + ".err");
  ChildProcess p(argv, log, err);
  const auto rc = p.wait_exit(std::chrono::seconds(60));
  std::ifstream in(log);
  std::string token;
  std::getline(in, token);
  EXPECT_EQ(rc, std::optional<int>(0)) << read_file(err);
  EXPECT_EQ(token.rfind(auth::kTokenPrefix, 0), 0u) << "no token printed: " << token;
  return rc == std::optional<int>(0) ? token : "";
}

std::map<std::string, std::string> with_bearer(const std::string& token,
                                               std::map<std::string, std::string> headers) {
  headers["Authorization"] = "Bearer " + token;
  return headers;
}

}  // namespace chartflow::testing
