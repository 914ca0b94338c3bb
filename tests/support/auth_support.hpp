// Test support: API tokens for tests that talk to a server, created in the test's schema the
// way `chartflow tokens create` creates them.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace chartflow::testing {

// A new token for `role` (name defaults to "test-<role>-<n>"); reviewers need an assignee.
std::string create_token(const std::string& dsn, const std::string& role,
                         std::optional<std::string> assignee = std::nullopt,
                         std::optional<std::string> name = std::nullopt);
// Runs `chartflow tokens create --role ROLE --name NAME <db_args...>` (db_args: --data-dir DIR
// or --database-url URL) and returns the token it printed; fails the test and returns "" when
// the command fails. `log` receives its stdout.
std::string create_token_cli(const std::vector<std::string>& db_args, const std::string& role,
                             const std::string& name, const std::filesystem::path& log);

// {"Authorization": "Bearer <token>"} merged into `headers`.
std::map<std::string, std::string> with_bearer(const std::string& token,
                                               std::map<std::string, std::string> headers = {});

}  // namespace chartflow::testing
