// Moving runs to another version of their workflow (issue #17 item 6): what an operator asks
// for, and how a request that cannot be planned at all is refused. Engine::migrate_runs
// (runtime/run_migration.cpp) does the work.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/run_migration.hpp"

namespace chartflow::runtime {

inline constexpr int kDefaultMigrationLimit = 1000;

struct RunMigrationRequest {
  std::string workflow;
  int from = 0, to = 0;  // workflow_version.version numbers
  core::StepRenames renames;
  bool dry_run = true;
  std::int64_t after = 0;  // only runs with a larger id (paging through many)
  int limit = kDefaultMigrationLimit;
};

// A request that names what does not exist (not_found: a version) or does not make sense.
struct MigrationRejected : std::invalid_argument {
  MigrationRejected(bool missing, const std::string& what)
      : std::invalid_argument(what), not_found(missing) {}
  bool not_found;
};

}  // namespace chartflow::runtime
