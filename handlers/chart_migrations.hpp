// The chart application's migrations, module "charts": schema/charts/NNNN_*.sql compiled into the
// chart library (cmake/schema.cmake generates the definition). Applied by Store::migrate after
// the engine's own; the app passes them with every other module's.
#pragma once

#include "engine/migration.hpp"

namespace chartflow::handlers {

MigrationSet chart_migrations();

}  // namespace chartflow::handlers
