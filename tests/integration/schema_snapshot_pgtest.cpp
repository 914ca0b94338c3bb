// The schema as the migrations build it: schema/snapshot.sql must show exactly what a fresh
// database gets (the test regenerates the dump the way schema/update_snapshot.sh does, through
// schema/normalise_dump.py), and Store::migrate applies each module's set once, in order,
// converting a database migrated by the numbered scheme from before modules.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>

#include "handlers/chart_migrations.hpp"
#include "store/migrations.hpp"
#include "store/store.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kSourceDir = CHARTFLOW_SOURCE_DIR;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// pg_dump of the server's major version: Debian keeps it in the version's bin directory.
std::string pg_dump_path() {
  auto r = run_command("pg_config --bindir");
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == ' '))
    r.output.pop_back();
  for (const std::string& dir :
       {r.exit_code == 0 ? r.output : std::string(), std::string("/usr/lib/postgresql/15/bin")})
    if (!dir.empty() && fs::exists(dir + "/pg_dump")) return dir + "/pg_dump";
  return "pg_dump";
}

// The line where two texts first differ (1-based), with both versions of it.
std::string first_difference(const std::string& expected, const std::string& actual) {
  std::istringstream a(expected), b(actual);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool more_a = static_cast<bool>(std::getline(a, la));
    const bool more_b = static_cast<bool>(std::getline(b, lb));
    if (!more_a && !more_b) return "";
    if (!more_a || !more_b || la != lb)
      return "line " + std::to_string(line) +
             ":\n  snapshot.sql: " + (more_a ? la : "<end of file>") +
             "\n  migrated:     " + (more_b ? lb : "<end of file>");
  }
}

class SchemaSnapshotTest : public PgTest {};

TEST_F(SchemaSnapshotTest, MigrationsBuildWhatSnapshotSqlShows) {
  // PgTest migrated this schema with the engine's and the chart application's sets.
  const fs::path out = fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs";
  fs::create_directories(out);
  const fs::path dump = out / "schema_snapshot.dump.sql";
  const fs::path actual_file = out / "schema_snapshot.actual.sql";
  auto r = run_command(shell_quote(pg_dump_path()) + " --schema-only -n " + shell_quote(schema()) +
                       " -f " + shell_quote(dump.string()) + " -d " + shell_quote(base_dsn()));
  ASSERT_EQ(r.exit_code, 0) << "pg_dump failed: " << r.output;
  r = run_command("python3 " + shell_quote(kSourceDir + "/schema/normalise_dump.py") + " " +
                  shell_quote(schema()) + " < " + shell_quote(dump.string()) + " > " +
                  shell_quote(actual_file.string()));
  ASSERT_EQ(r.exit_code, 0) << "schema/normalise_dump.py failed: " << r.output;

  const std::string expected = read_file(kSourceDir + "/schema/snapshot.sql");
  const std::string actual = read_file(actual_file);
  ASSERT_FALSE(actual.empty());
  EXPECT_TRUE(expected == actual)
      << "schema/snapshot.sql differs from the schema the migrations build, first at "
      << first_difference(expected, actual) << "\nThe migrated schema, normalised, is in "
      << actual_file.string() << ":\n  diff -u " << kSourceDir << "/schema/snapshot.sql "
      << actual_file.string()
      << "\nIf the migrations are right, regenerate the snapshot with schema/update_snapshot.sh "
         "and commit it with them (add a migration; never edit a released one).";
}

class SchemaMigrationTest : public PgTest {
 protected:
  int migrate(const std::vector<MigrationSet>& modules) {
    return store::Store(dsn()).migrate(modules);
  }
  std::vector<MigrationSet> charts() { return {handlers::chart_migrations()}; }

  // What a database the numbered scheme migrated held in schema_migration: `versions` of it.
  void make_numbered_history(const std::string& versions) {
    scalar("DROP TABLE IF EXISTS schema_migration");
    scalar(
        "CREATE TABLE schema_migration (version integer PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now())");
    scalar(
        "INSERT INTO schema_migration (version, name) SELECT v, format('%s_old', v) FROM "
        "unnest('{" +
        versions + "}'::int[]) v");
  }
};

TEST_F(SchemaMigrationTest, EachModuleIsAppliedOnceInOrderAfterTheEngine) {
  EXPECT_EQ(migrate(charts()), 0) << "PgTest migrated already";
  const std::string engine_count = std::to_string(store::embedded_migrations().migrations.size());
  EXPECT_EQ(scalar("SELECT count(*) FROM schema_migration WHERE module = 'engine'"), engine_count);
  std::string chart_names;
  const auto chart_sets = charts();
  for (const auto& m : chart_sets[0].migrations)
    chart_names += (chart_names.empty() ? "" : ",") + std::string(m.name);
  EXPECT_EQ(chart_names.rfind("0001_charts,", 0), 0U) << chart_names;
  EXPECT_EQ(scalar("SELECT string_agg(name, ',' ORDER BY version) FROM schema_migration "
                   "WHERE module = 'charts'"),
            chart_names);

  // A module of its own: its migrations see the engine's and the earlier modules' tables.
  MigrationSet extra{"extra",
                     {{1, "0001_notes", "CREATE TABLE note (chart_id text REFERENCES chart)"}}};
  EXPECT_EQ(migrate({charts()[0], extra}), 1);
  extra.migrations.push_back({2, "0002_note_text", "ALTER TABLE note ADD COLUMN body text"});
  EXPECT_EQ(migrate({charts()[0], extra}), 1);
  EXPECT_EQ(migrate({charts()[0], extra}), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM schema_migration WHERE module = 'extra'"), "2");

  // A failing migration names itself and leaves nothing behind.
  extra.migrations.push_back({3, "0003_broken", "ALTER TABLE nowhere ADD COLUMN x int"});
  try {
    migrate({charts()[0], extra});
    ADD_FAILURE() << "a failing migration was not reported";
  } catch (const store::FatalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("extra/0003_broken"));
  }
  EXPECT_EQ(scalar("SELECT count(*) FROM schema_migration WHERE module = 'extra'"), "2");

  // Two sets under one name, or one under a reserved name, are refused before anything runs.
  EXPECT_THROW(migrate({charts()[0], charts()[0]}), store::FatalError);
  EXPECT_THROW(migrate({MigrationSet{"engine", {}}}), store::FatalError);
}

TEST_F(SchemaMigrationTest, CompleteNumberedHistoryIsConvertedInPlace) {
  // The squashed migrations (engine 0001-0004, charts 0001) create exactly what schema/0001-0017
  // did, so a schema holding only what they made stands for an old database; engine and chart
  // migrations added since are applied after the conversion.
  scalar("DROP SCHEMA " + schema() + " CASCADE");
  scalar("CREATE SCHEMA " + schema());
  {
    pqxx::connection c(dsn());
    pqxx::work tx(c);
    for (const auto& m : store::embedded_migrations().migrations)
      if (m.version <= 4) tx.exec(m.sql);
    tx.exec(charts()[0].migrations.at(0).sql);
    tx.commit();
  }
  make_numbered_history("1,2,3,4,6,7,8,9,10,11,12,13,14,15,16,17");
  std::string expected;
  int newer_charts = 0;
  const auto chart_sets = charts();
  for (const auto& m : chart_sets[0].migrations) {
    expected += (expected.empty() ? "" : ",") + std::string("charts:") + std::to_string(m.version);
    if (m.version > 1) ++newer_charts;
  }
  int newer = 0;
  for (const auto& m : store::embedded_migrations().migrations) {
    expected += ",engine:" + std::to_string(m.version);
    if (m.version > 4) ++newer;
  }
  // Converted without the chart set too: `chartflow tokens` may be the first to start.
  EXPECT_EQ(migrate({}), newer);
  EXPECT_EQ(migrate(charts()), newer_charts);
  EXPECT_EQ(scalar("SELECT string_agg(module || ':' || version, ',' ORDER BY module, version) "
                   "FROM schema_migration WHERE module <> 'numbered'"),
            expected);
  EXPECT_EQ(scalar("SELECT count(*) FROM schema_migration WHERE module = 'numbered'"), "16");
  EXPECT_EQ(scalar("SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a "
                   "WHERE a.attrelid = 'schema_migration'::regclass AND a.attnum > 0"),
            "version,name,applied_at,module");
}

TEST_F(SchemaMigrationTest, IncompleteNumberedHistoryIsRefused) {
  make_numbered_history("1,2,3,4,6,7,8,9,10,11,12");
  try {
    migrate(charts());
    ADD_FAILURE() << "an incomplete numbered history was converted";
  } catch (const store::FatalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("versions 1,2,3,4,6,7,8,9,10,11,12"));
    EXPECT_THAT(e.what(), HasSubstr("only a complete one (1-4 and 6-17) can be converted"));
  }
  EXPECT_EQ(scalar("SELECT count(*) FROM schema_migration"), "11") << "nothing was changed";
}

}  // namespace
}  // namespace chartflow::testing
