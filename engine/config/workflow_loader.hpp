// Loads workflow definitions from workflows/ (YAML; JSON accepted) and validates them into
// core::Workflow values. Runs once at start-up (and on reload): every problem in every file is
// collected with its file and line so an operator can fix them all in one pass, and a workflow is
// returned only when its file has no errors. Stateless free functions; safe to call from any
// thread as long as the HandlerCheck callbacks are.
//
// File format (one workflow per file):
//
//   name: diamond            # required, [a-z0-9][a-z0-9._-]*, at most 100 chars
//   description: "..."       # optional
//   on:                      # required, non-empty list of triggers
//     - event: demo.diamond  # event type, [A-Za-z0-9._-]+
//       filter: { path: /event/kind, equals: "x" }  # optional condition on {"event": body}
//       debounce: { key: /event/chart_id, window: 30s, max_wait: 5m }  # optional: events with
//                            #   the same key value start one run, with the last one's body;
//                            #   max_wait >= window, default 10 windows, both at most 30d
//     - schedule: "0 0 * * *"  # or a schedule trigger: runs as event "schedule.tick";
//       timezone: Europe/Oslo  #   timezone and catch_up (true/false) are schedule-only
//       catch_up: false
//   steps:                   # required mapping of step name -> step, at least one
//     a: { handler: noop }   # step names [a-z0-9_-]+, at most 100 chars
//     b:
//       handler: sleep       # a registered handler name, or an external handler:
//                            #   { exec: [prog, arg...], timeout: 10s, memory: 256Mi, ... }
//                            #   { runtime: python3, ... }
//                            # (handler "exec"/"python3"; the whole mapping is its config)
//       needs: [a]           # steps that must finish first (a single name is fine too)
//       input: { ms: 300 }   # any mapping; handed to the handler as JSON
//       when: { path: /event/skip_e, equals: false }
//       retry: { max_attempts: 5, initial: 200ms, max: 30s, multiplier: 2, jitter: 0.2 }
//       on_exhausted: park   # or fail (the default, or the workflow's top-level on_exhausted):
//                            # after the last failed attempt the step waits for an operator
//       timeout: 30s         # per attempt; default 30s
//       concurrency: 1       # or { limit: 1, key: /event/patient_id } (one limit per key value)
//     c: { workflow: other, input: { x: 1 } }  # a child workflow in place of a handler: starts
//                            #   a run of `other` and waits for its end (load_workflow_dir
//                            #   checks `other` is loaded and no cycle of children)
//
// Conditions (when, filter): { path: <JSON pointer>, <op>: value } with op one of equals,
// not_equals, exists (true/false), gt, gte, lt, lte (number or string), in (list), contains;
// combined with { all: [...] }, { any: [...] }, { not: {...} }. A step's `when` sees
// {"event": body, "steps": {name: output}}: paths start with /event or /steps/<name>, where <name>
// is a step it needs, directly or transitively. A trigger filter sees only /event.
//
// Durations: an integer and a unit (ms, s, m, h, d), combinable: 250ms, 3s, 1m30s. Always > 0.
// retry: max_attempts 1..100 (default 3), multiplier >= 1 (default 2), jitter 0..1 (default 0.2),
// initial <= max (defaults 200ms, 30s).
//
// Scalars follow YAML 1.2: only true/false are booleans, quoted values are always strings, so
// input `{ code: "0123" }` stays a string. Unknown keys are errors at every level.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/workflow.hpp"

namespace chartflow::config {

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when the problem is the file as a whole (unreadable, ...)
  std::string message;

  // "file:line: message", or "file: message" without a line, as compilers print it.
  std::string to_string() const;
};

struct LoadResult {
  std::optional<core::Workflow> workflow;  // set only when `errors` is empty
  std::vector<ConfigError> errors;
};

// How the loader asks about handlers without depending on the runtime's registry. Either
// function may be empty: then every name exists / every config is accepted.
struct HandlerCheck {
  // True when a handler of this name is registered ("exec"/"python3" for external handlers).
  std::function<bool(const std::string&)> exists;
  // Throws std::invalid_argument naming the problem when the handler rejects its settings.
  // A named handler gets the step's input (where built-in handlers read their settings); an
  // external one gets its handler mapping (HandlerSpec::config).
  std::function<void(const std::string&, const nlohmann::json&)> validate;
};

// `file_name` is used only in messages and Workflow::source_file.
LoadResult load_workflow_text(const std::string& text, const std::string& file_name,
                              const HandlerCheck& handlers);
LoadResult load_workflow_file(const std::filesystem::path& path, const HandlerCheck& handlers);

struct DirResult {
  std::vector<core::Workflow> workflows;  // the valid ones, in file name order
  std::vector<ConfigError> errors;
};

// Loads every *.yaml, *.yml and *.json directly in `dir`, in file name order. Subfolders are not
// read (workflows/rules/ holds other config) and dot files are skipped (editor temp files). A
// workflow whose name an earlier file already used is reported and left out.
DirResult load_workflow_dir(const std::filesystem::path& dir, const HandlerCheck& handlers);

// Identity of a definition's content: 64-bit FNV-1a of Workflow::to_json().dump() as 16 lower-case
// hex digits. Not cryptographic; it only tells versions apart. source_file is not part of it.
std::string content_hash(const core::Workflow& w);

}  // namespace chartflow::config
