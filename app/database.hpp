// The database a command works on: --database-url / CHARTFLOW_DATABASE_URL, else the embedded
// cluster under --data-dir. A one-shot command (`tokens`, `audit`, `users`, `migrate`) reaches
// the cluster of a running `chartflow serve` through its socket, or starts the cluster for
// itself and stops it again when done.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "app/commands.hpp"
#include "runtime/embedded_postgres.hpp"

namespace chartflow::cli {

inline constexpr const char* kDefaultDataDir = "./chartflow-data";

class CommandDatabase {
 public:
  explicit CommandDatabase(const Args& command_line);
  const std::string& dsn() const { return dsn_; }

 private:
  std::unique_ptr<runtime::EmbeddedPostgres> embedded_;
  std::string dsn_;
};

// Who runs a local command, for the audit trail: "cli:<login name>".
std::string local_actor();

}  // namespace chartflow::cli
