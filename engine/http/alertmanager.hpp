// Prometheus Alertmanager webhook payloads (version 4) as events: each alert becomes
// alert.firing or alert.resolved with its labels and annotations. Pure; thread-safe.
#pragma once

#include <vector>

#include "http/router.hpp"
#include "store/types.hpp"

namespace chartflow::http {

inline constexpr const char* kAlertFiringEvent = "alert.firing";
inline constexpr const char* kAlertResolvedEvent = "alert.resolved";

// One event per alert, deduplicated per (fingerprint, startsAt, status): Alertmanager repeats a
// group's notification every repeat_interval, and that must not start the workflow again.
// Throws HttpError 400 naming the problem.
std::vector<store::EventInput> alertmanager_events(const Json& payload);

}  // namespace chartflow::http
