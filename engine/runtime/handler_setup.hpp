// Builds the engine's handler registry: the built-in utility handlers and the external handlers
// ("exec" and "python3", whose programs and modules are found relative to the workflows folder).
// Modules add theirs to it (engine/module.hpp).
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "config/workflow_loader.hpp"
#include "engine/handler.hpp"
#include "runtime/external/process_pool.hpp"

namespace chartflow::runtime {

std::shared_ptr<HandlerRegistry> make_handler_registry(const std::filesystem::path& workflows_dir,
                                                       external::PoolHooks hooks = {});
// Registers the external handlers ("exec", "python3") into `registry`.
void register_external_handlers(HandlerRegistry& registry,
                                const std::filesystem::path& workflows_dir,
                                external::PoolHooks hooks = {});
// Starts the warm processes of every external handler these workflows use.
void prewarm_external_handlers(const HandlerRegistry& registry,
                               const std::vector<core::Workflow>& workflows);
config::HandlerCheck handler_check(const HandlerRegistry& registry);

}  // namespace chartflow::runtime
