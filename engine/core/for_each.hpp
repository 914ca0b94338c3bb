// Fan-out (`for_each`): a step run once per element of a list in its run's context. The step's
// own row plans the elements when it first runs, each element is a step row of its own named
// `step[i]` (its own attempts and retries, durable like any step), and the step's row collects
// their outputs, in list order, once all of them are done. Pure helpers for the engine; no I/O.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/workflow.hpp"

namespace chartflow::core {

// The row key of element `index` of step `step`: "step[index]". Step names cannot hold '['.
std::string element_key(std::string_view step, std::size_t index);

struct ElementKey {
  std::string step;
  std::size_t index = 0;
};
// The step and index an element's row key names; nullopt for a step's own key.
std::optional<ElementKey> parse_element_key(std::string_view key);

// The definition a row key runs under: its step's, or for an element row (`step[i]`) that of
// its for_each step; nullptr when the workflow has neither.
const Step* definition_of(const Workflow& wf, std::string_view key);

// The list a for_each step runs over, read from its run's context as a condition reads it
// ({"event": `event`, "steps": `steps`}, where `steps` is {name: output}; neither is copied),
// or why there is none. The message names the pointer and the JSON type found, never a value
// (the context holds patient data).
std::variant<nlohmann::json, std::string> for_each_list(const ForEach& fe,
                                                        const nlohmann::json& event,
                                                        const nlohmann::json& steps);

// What element `index` of a step sees as its input: the step's static input with `item` (the
// element) and `index` beside it (a static input that is not an object is kept under `input`).
nlohmann::json element_input(const nlohmann::json& input, const nlohmann::json& item,
                             std::size_t index);

// The step's output once its `count` elements are done: their outputs in list order, read from
// `outputs` ({key: output} of the run's succeeded steps); an element with no output there is
// null.
nlohmann::json collect_outputs(const nlohmann::json& outputs, std::string_view step,
                               std::size_t count);

}  // namespace chartflow::core
