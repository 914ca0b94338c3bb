// What one drop-folder file becomes, decided from its place (subfolder, name) and its bytes
// alone: the pure half of the drop folder, shared by DropFolder and the fuzz target
// (tests/fuzz/drop_folder_fuzz.cpp), with no I/O, database or threads.
//
// The rules (docs/workflows.md, "Drop folder"):
//  - a file in a subfolder is an event of the subfolder's type whose body is the file's JSON
//    object; a reserved type (one chartflow emits itself) and a signed type (one whose webhook
//    needs an HMAC signature) are refused, since a file carries no signature;
//  - a `.json` file at the top is a chart (FHIR Bundle) for the chart intake;
//  - any other file at the top is an object (`object.created`);
//  - each is held to the limits its HTTP door applies: an event file to the API body limit, a
//    chart to the upload limit, and JSON to the nesting depth and Bundle entry limits, checked
//    before anything parses it.
// A rejection reason names the problem, never the file's name or content.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/event_policy.hpp"
#include "core/input_limits.hpp"
#include "engine/handler.hpp"

namespace chartflow::runtime {

inline constexpr const char* kObjectCreatedEvent = "object.created";

struct DropLimits {
  std::size_t event_bytes = core::kDefaultBodyBytes;     // a subfolder's event file
  std::size_t chart_bytes = core::kDefaultUploadBytes;   // a `.json` chart at the top
  std::size_t object_bytes = core::kDefaultUploadBytes;  // any other file at the top
  core::JsonLimits json;
};

// True when `type` may enter only signed (its webhook has a secret).
using SignedTypeFn = std::function<bool(const std::string& type)>;

struct DropPolicy {
  DropLimits limits;
  const core::ReservedEventTypes* reserved = nullptr;  // none: nothing is reserved here
  SignedTypeFn requires_signature;                     // none: no type is signed
};

// Where a file sits: `subfolder` is "" at the top, else the event type it names.
struct DropEntry {
  std::string subfolder;
  std::string name;
};

enum class DropKind { kEvent, kChart, kObject };

struct DropDecision {
  DropKind kind = DropKind::kObject;
  std::optional<std::string> rejection;  // set: the file goes to error/ with this reason
  Json body;                             // kEvent, accepted: the event's body (an object)
};

// A subfolder's name is an event type: 1-200 of [A-Za-z0-9._-], not "." or "..".
bool valid_drop_type(std::string_view name);
DropKind drop_kind(const DropEntry& entry);
// The size limit for this entry, which the reader checks before reading.
std::size_t drop_size_limit(const DropEntry& entry, const DropLimits& limits);
// "the file has N bytes, more than the limit of M".
std::string drop_too_large(std::size_t size, std::size_t limit);
// Classifies and validates the file's bytes. Never throws on any input.
DropDecision classify_drop_file(const DropEntry& entry, std::string_view bytes,
                                const DropPolicy& policy);

}  // namespace chartflow::runtime
