#include "store/migrations.hpp"

#include <pqxx/pqxx>
#include <set>
#include <string>
#include <utility>

#include "store/errors.hpp"

namespace chartflow::store {

namespace {

// Shared with every process migrating this database (any schema): one migrator at a time. The
// lock is released at commit, so the next one sees what the first recorded.
constexpr const char* kLock = "SELECT pg_advisory_xact_lock(7210371)";

// module comes last so that the table of the numbered scheme (version, name, applied_at)
// converts in place (see convert_numbered_history).
constexpr const char* kCreateTable =
    "CREATE TABLE schema_migration (version integer NOT NULL, name text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now(), module text NOT NULL, "
    "PRIMARY KEY (module, version))";

// Before modules, schema/0001-0017 (no 0005) were one numbered series in schema_migration
// (version, name). They were squashed, unreleased, into engine 0001-0004 and charts 0001.
const std::set<int> kNumberedVersions = {1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
constexpr int kSquashedEngineVersions = 4;  // engine 0001-0004
constexpr const char* kSquashedCharts = "0001_charts";

// A database the numbered scheme migrated completely holds exactly what the squashed
// migrations create: they are recorded as applied, and its old rows kept under module
// "numbered". Anything less complete is refused rather than guessed at.
void convert_numbered_history(pqxx::transaction_base& tx) {
  std::set<int> found;
  for (const auto& row : tx.exec("SELECT version FROM schema_migration"))
    found.insert(row[0].as<int>());
  if (found != kNumberedVersions) {
    std::string have;
    for (int v : found) have += (have.empty() ? "" : ",") + std::to_string(v);
    throw FatalError(
        "schema_migration holds a numbered migration history from before modules (versions " +
        (have.empty() ? std::string("none") : have) +
        "); only a complete one (1-4 and 6-17) can be converted. Migrate this database with the "
        "chartflow build that created it first, or start from an empty one.");
  }
  tx.exec(
      "ALTER TABLE schema_migration ADD COLUMN module text NOT NULL DEFAULT 'numbered', "
      "DROP CONSTRAINT schema_migration_pkey, ADD PRIMARY KEY (module, version)");
  // The numbered 0014 had set lz4 on name too: the table ends as a fresh one is made.
  tx.exec(
      "ALTER TABLE schema_migration ALTER COLUMN module DROP DEFAULT, "
      "ALTER COLUMN name SET COMPRESSION default");
  for (const auto& m : embedded_migrations().migrations)
    if (m.version <= kSquashedEngineVersions)
      tx.exec_params(
          "INSERT INTO schema_migration (module, version, name) VALUES ('engine', $1, $2)",
          m.version, m.name);
  tx.exec_params("INSERT INTO schema_migration (module, version, name) VALUES ('charts', 1, $1)",
                 kSquashedCharts);
}

}  // namespace

int apply_migrations(pqxx::transaction_base& tx, const std::vector<MigrationSet>& modules) {
  std::vector<const MigrationSet*> sets;
  const MigrationSet engine = embedded_migrations();
  sets.push_back(&engine);
  std::set<std::string> names;
  for (const auto& set : modules) sets.push_back(&set);
  for (const auto* set : sets) {
    if (set->module.empty() || set->module == "numbered" || !names.insert(set->module).second)
      throw FatalError("migrations: module name '" + set->module +
                       "' is empty, reserved or given twice");
    for (std::size_t i = 1; i < set->migrations.size(); ++i)
      if (set->migrations[i].version <= set->migrations[i - 1].version)
        throw FatalError("migrations of module " + set->module + " are not in version order");
  }

  tx.exec(kLock);
  std::set<std::string> columns;
  for (const auto& row :
       tx.exec("SELECT column_name FROM information_schema.columns "
               "WHERE table_schema = current_schema() AND table_name = 'schema_migration'"))
    columns.insert(row[0].as<std::string>());
  if (columns.empty())
    tx.exec(kCreateTable);
  else if (!columns.count("module"))
    convert_numbered_history(tx);

  std::set<std::pair<std::string, int>> done;
  for (const auto& row : tx.exec("SELECT module, version FROM schema_migration"))
    done.emplace(row[0].as<std::string>(), row[1].as<int>());
  int applied = 0;
  for (const auto* set : sets) {
    for (const auto& m : set->migrations) {
      if (done.count({set->module, m.version})) continue;
      try {
        tx.exec(m.sql);
      } catch (const pqxx::sql_error& e) {
        throw FatalError("migration " + set->module + "/" + m.name + " failed: " + e.what());
      }
      tx.exec_params("INSERT INTO schema_migration (module, version, name) VALUES ($1, $2, $3)",
                     set->module, m.version, m.name);
      ++applied;
    }
  }
  return applied;
}

}  // namespace chartflow::store
