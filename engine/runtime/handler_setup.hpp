// Builds the handler registry of a chartflow process: the built-in utility handlers and the
// chart handlers (whose settings live beside the workflow files).
#pragma once

#include <filesystem>
#include <memory>

#include "config/workflow_loader.hpp"
#include "engine/handler.hpp"

namespace chartflow::runtime {

std::shared_ptr<HandlerRegistry> make_handler_registry(const std::filesystem::path& workflows_dir);
config::HandlerCheck handler_check(const HandlerRegistry& registry);

}  // namespace chartflow::runtime
