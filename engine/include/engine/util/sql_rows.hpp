// Small helpers over the handler Sql interface, whose rows come back as JSON objects of column
// text. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::util {

using SqlParams = std::vector<std::optional<std::string>>;

// Runs a statement and returns its rows as a JSON array (empty when the driver returns nothing).
Json query_rows(Sql& sql, std::string_view statement, const SqlParams& params = {});
// The first row, or nullopt.
std::optional<Json> query_one(Sql& sql, std::string_view statement, const SqlParams& params = {});

std::optional<std::string> column_text(const Json& row, std::string_view column);
std::optional<std::int64_t> column_int(const Json& row, std::string_view column);
std::optional<double> column_double(const Json& row, std::string_view column);
bool column_bool(const Json& row, std::string_view column);
// The column parsed as JSON (jsonb columns), or null when absent or unparsable.
Json column_json(const Json& row, std::string_view column);

// SQL text rendering a timestamptz column as ISO 8601 UTC ("2024-05-01T10:00:00Z").
std::string sql_iso(std::string_view column);

}  // namespace chartflow::util
