#include "engine/util/sql_rows.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

namespace chartflow::util {

Json query_rows(Sql& sql, std::string_view statement, const SqlParams& params) {
  Json rows = sql.query(statement, params);
  return rows.is_array() ? rows : Json::array();
}

std::optional<Json> query_one(Sql& sql, std::string_view statement, const SqlParams& params) {
  Json rows = query_rows(sql, statement, params);
  if (rows.empty() || !rows.front().is_object()) return std::nullopt;
  return std::move(rows.front());
}

std::optional<std::string> column_text(const Json& row, std::string_view column) {
  if (!row.is_object()) return std::nullopt;
  auto it = row.find(column);
  if (it == row.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

std::optional<std::int64_t> column_int(const Json& row, std::string_view column) {
  if (!row.is_object()) return std::nullopt;
  auto it = row.find(column);
  if (it == row.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number()) return static_cast<std::int64_t>(it->get<double>());
  if (!it->is_string()) return std::nullopt;
  const std::string& s = it->get_ref<const std::string&>();
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return std::nullopt;
  return static_cast<std::int64_t>(v);
}

std::optional<double> column_double(const Json& row, std::string_view column) {
  if (!row.is_object()) return std::nullopt;
  auto it = row.find(column);
  if (it == row.end() || it->is_null()) return std::nullopt;
  if (it->is_number()) return it->get<double>();
  if (!it->is_string()) return std::nullopt;
  const std::string& s = it->get_ref<const std::string&>();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') return std::nullopt;
  return v;
}

bool column_bool(const Json& row, std::string_view column) {
  if (!row.is_object()) return false;
  auto it = row.find(column);
  if (it == row.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  return it->is_string() && (*it == "t" || *it == "true");
}

Json column_json(const Json& row, std::string_view column) {
  if (!row.is_object()) return nullptr;
  auto it = row.find(column);
  if (it == row.end() || it->is_null()) return nullptr;
  if (!it->is_string()) return *it;
  Json parsed = Json::parse(it->get_ref<const std::string&>(), nullptr, false);
  return parsed.is_discarded() ? Json(nullptr) : parsed;
}

std::string sql_iso(std::string_view column) {
  return fmt::format("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", column);
}

}  // namespace chartflow::util
