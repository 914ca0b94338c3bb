// The reason an operator gives for a command ({"reason": "..."} in the body): read by people, in
// the dashboard and the audit trail, so a sentence of at most a thousand bytes, trimmed.
#pragma once

#include <string>

#include "http/router.hpp"

namespace chartflow::http {

// "" when absent and not `required`; a 400 naming the problem otherwise (`hint` says what a
// missing required reason should look like).
std::string operator_reason(const Request& req, bool required, const std::string& hint = "");

}  // namespace chartflow::http
