// The engine's schema migrations and the runner that applies every module's (Store::migrate).
#pragma once

#include <vector>

#include "engine/migration.hpp"

namespace pqxx {
class transaction_base;
}

namespace chartflow::store {

// The engine's own set, module "engine": schema/engine/NNNN_*.sql compiled into the binary
// (cmake/schema.cmake, cmake/embed_migrations.cmake).
MigrationSet embedded_migrations();

// Applies, in `tx`, the engine's set and then each of `modules` in order: every migration not yet
// recorded in schema_migration under (module, version), which it then records. Takes the
// migration lock first, so concurrent migrators apply each migration once. Returns how many it
// applied. Throws FatalError for a bad set or a history it cannot continue.
int apply_migrations(pqxx::transaction_base& tx, const std::vector<MigrationSet>& modules);

}  // namespace chartflow::store
