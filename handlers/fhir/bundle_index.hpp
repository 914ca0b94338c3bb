// An index over one FHIR Bundle: its resources by fullUrl, by "Type/id" and by type, and the
// resolution of the references found inside them. Built once per parsed Bundle (see
// handlers/common/chart_cache.hpp) and read-only afterwards, so one index may be shared by any
// number of threads. It holds pointers into the Bundle, which must outlive it.
//
// Resolution is liberal, as the issue asks: relative ("Encounter/123"), versioned
// ("Patient/45/_history/2"), absolute ("http://x/fhir/Patient/23"), "urn:uuid:..." fullUrls,
// conditional ("Practitioner?identifier=system|value", matched against identifiers inside the
// Bundle) and contained ("#id", looked up in the resource holding the reference). A reference
// that does not resolve inside the Bundle yields nullptr; nothing here throws on odd input.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::fhir {

class BundleIndex {
 public:
  explicit BundleIndex(const Json& bundle);
  explicit BundleIndex(Json&&) = delete;  // the index points into the Bundle: keep it alive
  BundleIndex(const BundleIndex&) = delete;
  BundleIndex& operator=(const BundleIndex&) = delete;

  const Json& bundle() const { return bundle_; }
  // Every entry resource in entry order (entries without a resource object are left out).
  const std::vector<const Json*>& resources() const { return resources_; }
  // Resources of one type in entry order; empty when there are none.
  const std::vector<const Json*>& of_type(std::string_view type) const;
  const Json* find(std::string_view type, std::string_view id) const;
  const Json* by_full_url(std::string_view full_url) const;
  // The first Patient entry, or nullptr.
  const Json* patient() const;

  // Resolves a reference string. `container` is the resource that holds the reference, needed
  // for contained ("#id") references.
  const Json* resolve(std::string_view reference, const Json* container = nullptr) const;
  // Resolves a Reference element ({"reference": ...}, or a logical {"identifier": ..., "type"}).
  const Json* resolve_reference(const Json& reference, const Json* container = nullptr) const;

  // "Type/id" for a resource of this Bundle; its fullUrl when it has no id.
  std::string ref_of(const Json& resource) const;
  // The entry fullUrl of a resource of this Bundle, or "" when it has none.
  std::string full_url_of(const Json& resource) const;
  // A reference to use inside this Bundle: the fullUrl when present, else "Type/id".
  std::string local_reference(const Json& resource) const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

  const Json* resolve_conditional(std::string_view type, std::string_view query) const;

  const Json& bundle_;
  std::vector<const Json*> resources_;
  StringMap<const Json*> by_full_url_;
  StringMap<const Json*> by_type_id_;
  StringMap<std::vector<const Json*>> by_type_;
  std::unordered_map<const Json*, std::string> full_url_of_;
};

// Case-sensitive identifier match: `query` is "system|value", "|value" (no system) or "value"
// (any system), as in a FHIR search on identifier.
bool identifier_matches(const Json& resource, std::string_view query);

}  // namespace chartflow::handlers::fhir
