#include "handlers/fhir/bundle_index.hpp"

#include <cctype>

#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::fhir {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

bool looks_like_type(std::string_view s) {
  if (s.empty() || std::isupper(static_cast<unsigned char>(s.front())) == 0) return false;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

// The last path segment of a type part that may be an absolute URL ("http://x/fhir/Patient").
std::string_view last_segment(std::string_view s) {
  auto slash = s.rfind('/');
  return slash == std::string_view::npos ? s : s.substr(slash + 1);
}

const std::vector<const Json*>& no_resources() {
  static const std::vector<const Json*> kEmpty;
  return kEmpty;
}

}  // namespace

bool identifier_matches(const Json& resource, std::string_view query) {
  std::string_view system;
  std::string_view value = query;
  bool any_system = true;
  if (auto bar = query.find('|'); bar != std::string_view::npos) {
    system = query.substr(0, bar);
    value = query.substr(bar + 1);
    any_system = false;
  }
  if (value.empty()) return false;
  for (const auto& id : array_member(resource, "identifier")) {
    if (string_member(id, "value") != value) continue;
    if (any_system || string_member(id, "system") == system) return true;
  }
  return false;
}

BundleIndex::BundleIndex(const Json& bundle) : bundle_(bundle) {
  const Json& entries = array_member(bundle, "entry");
  resources_.reserve(entries.size());
  for (const auto& entry : entries) {
    const Json* resource = member(entry, "resource");
    if (resource == nullptr || !resource->is_object()) continue;
    resources_.push_back(resource);
    std::string type = resource_type(*resource);
    std::string full_url = string_member(entry, "fullUrl");
    if (!full_url.empty()) {
      by_full_url_.emplace(full_url, resource);
      full_url_of_.emplace(resource, full_url);
    }
    if (type.empty()) continue;
    std::string id = resource_id(*resource);
    if (!id.empty()) {
      std::string key;
      key.reserve(type.size() + 1 + id.size());
      key.append(type).append("/").append(id);
      by_type_id_.emplace(std::move(key), resource);
    }
    by_type_[type].push_back(resource);
  }
}

const std::vector<const Json*>& BundleIndex::of_type(std::string_view type) const {
  auto it = by_type_.find(type);
  return it == by_type_.end() ? no_resources() : it->second;
}

const Json* BundleIndex::find(std::string_view type, std::string_view id) const {
  std::string key;
  key.reserve(type.size() + id.size() + 1);
  key.append(type).append("/").append(id);
  auto it = by_type_id_.find(key);
  return it == by_type_id_.end() ? nullptr : it->second;
}

const Json* BundleIndex::by_full_url(std::string_view full_url) const {
  auto it = by_full_url_.find(full_url);
  return it == by_full_url_.end() ? nullptr : it->second;
}

const Json* BundleIndex::patient() const {
  const auto& patients = of_type("Patient");
  return patients.empty() ? nullptr : patients.front();
}

const Json* BundleIndex::resolve(std::string_view reference, const Json* container) const {
  reference = trim(reference);
  if (reference.empty()) return nullptr;
  if (reference.front() == '#') {
    if (container == nullptr) return nullptr;
    std::string_view id = reference.substr(1);
    if (id.empty()) return container;
    for (const auto& c : array_member(*container, "contained")) {
      if (c.is_object() && string_member(c, "id") == id) return &c;
    }
    return nullptr;
  }
  if (const Json* r = by_full_url(reference)) return r;
  if (auto h = reference.find("/_history/"); h != std::string_view::npos) {
    reference = reference.substr(0, h);
    if (const Json* r = by_full_url(reference)) return r;
  }
  // urn:uuid: and urn:oid: name an entry only through its fullUrl.
  if (reference.substr(0, 4) == "urn:") return nullptr;
  if (auto q = reference.find('?'); q != std::string_view::npos) {
    return resolve_conditional(last_segment(reference.substr(0, q)), reference.substr(q + 1));
  }
  auto slash = reference.rfind('/');
  if (slash == std::string_view::npos || slash + 1 == reference.size()) return nullptr;
  std::string_view id = reference.substr(slash + 1);
  std::string_view type = last_segment(reference.substr(0, slash));
  if (!looks_like_type(type)) return nullptr;
  return find(type, id);
}

const Json* BundleIndex::resolve_conditional(std::string_view type, std::string_view query) const {
  if (!looks_like_type(type)) return nullptr;
  std::vector<std::string> identifiers;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.empty()) continue;
    auto eq = param.find('=');
    if (eq == std::string_view::npos || param.substr(0, eq) != "identifier") {
      return nullptr;  // only identifier searches can be answered from inside a Bundle
    }
    identifiers.push_back(url_decode(param.substr(eq + 1)));
  }
  if (identifiers.empty()) return nullptr;
  const Json* match = nullptr;
  for (const Json* r : of_type(type)) {
    bool all = true;
    for (const auto& q : identifiers) {
      if (!identifier_matches(*r, q)) {
        all = false;
        break;
      }
    }
    if (!all) continue;
    if (match != nullptr) return nullptr;  // ambiguous: FHIR treats this as unresolvable
    match = r;
  }
  return match;
}

const Json* BundleIndex::resolve_reference(const Json& reference, const Json* container) const {
  if (reference.is_string()) return resolve(reference.get_ref<const std::string&>(), container);
  if (!reference.is_object()) return nullptr;
  std::string ref = string_member(reference, "reference");
  if (!ref.empty()) return resolve(ref, container);
  const Json* identifier = member(reference, "identifier");
  std::string type = string_member(reference, "type");
  if (identifier == nullptr || !identifier->is_object()) return nullptr;
  std::string value = string_member(*identifier, "value");
  if (value.empty()) return nullptr;
  std::string query = string_member(*identifier, "system") + "|" + value;
  const Json* match = nullptr;
  auto consider = [&](const Json* r) {
    if (!identifier_matches(*r, query)) return true;
    if (match != nullptr) {
      match = nullptr;
      return false;
    }
    match = r;
    return true;
  };
  if (!type.empty()) {
    for (const Json* r : of_type(last_segment(type))) {
      if (!consider(r)) return nullptr;
    }
  } else {
    for (const Json* r : resources_) {
      if (!consider(r)) return nullptr;
    }
  }
  return match;
}

std::string BundleIndex::ref_of(const Json& resource) const {
  std::string type = resource_type(resource);
  std::string id = resource_id(resource);
  if (!type.empty() && !id.empty()) return type + "/" + id;
  std::string url = full_url_of(resource);
  if (!url.empty()) return url;
  return type;
}

std::string BundleIndex::full_url_of(const Json& resource) const {
  auto it = full_url_of_.find(&resource);
  return it == full_url_of_.end() ? std::string() : it->second;
}

std::string BundleIndex::local_reference(const Json& resource) const {
  std::string url = full_url_of(resource);
  return url.empty() ? ref_of(resource) : url;
}

}  // namespace chartflow::handlers::fhir
