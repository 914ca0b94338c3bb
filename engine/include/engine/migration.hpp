// Schema migrations of a module, compiled into the binary and applied once each, in order, by
// Store::migrate (the engine's own set first), which records them in schema_migration by
// (module, version). A released migration is never edited: a change is a new migration.
#pragma once

#include <string>
#include <vector>

namespace chartflow {

struct Migration {
  int version;       // NNNN of schema/<folder>/NNNN_name.sql; increasing within the set
  const char* name;  // NNNN_name
  const char* sql;   // the file's statements, run in the migrating transaction
};

struct MigrationSet {
  std::string module;  // "engine" is the engine's own; "charts" the chart application's
  std::vector<Migration> migrations;
};

}  // namespace chartflow
