// Test-only helpers: paths to the repository's chart test data and JSON loading. Header-only,
// included by *_test.cpp files only (needs CHARTFLOW_SOURCE_DIR, defined for test binaries).
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::testing {

inline std::filesystem::path source_dir() { return std::filesystem::path(CHARTFLOW_SOURCE_DIR); }
inline std::filesystem::path charts_dir() { return source_dir() / "tests/data/charts"; }
inline std::filesystem::path hl7_dir() { return source_dir() / "tests/data/hl7"; }
inline std::filesystem::path workflows_dir() { return source_dir() / "workflows"; }

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline Json load_json(const std::filesystem::path& path) { return Json::parse(read_file(path)); }

// The 35 chart Bundles, sorted by file name.
inline std::vector<std::filesystem::path> chart_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(charts_dir())) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A Bundle of the given resources with absolute fullUrls, as a FHIR server would return them.
inline Json bundle_of(const std::vector<Json>& resources, const std::string& type = "collection") {
  Json bundle = {{"resourceType", "Bundle"}, {"type", type}, {"entry", Json::array()}};
  for (const auto& r : resources) {
    Json entry = {{"resource", r}};
    if (r.contains("id") && r.contains("resourceType")) {
      entry["fullUrl"] = "http://example.org/fhir/" + r["resourceType"].get<std::string>() + "/" +
                         r["id"].get<std::string>();
    }
    bundle["entry"].push_back(std::move(entry));
  }
  return bundle;
}

// Loads hl7 example files by name ("MedicationAdministration-medadmin0301").
inline std::vector<Json> hl7_resources(const std::vector<std::string>& names) {
  std::vector<Json> out;
  out.reserve(names.size());
  for (const auto& n : names) out.push_back(load_json(hl7_dir() / (n + ".json")));
  return out;
}

}  // namespace chartflow::handlers::testing
