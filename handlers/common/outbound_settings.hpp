// The settings of an outbound HTTP endpoint (an insurer's, a bill webhook's), shared by
// insurers.yaml and bill-delivery.yaml: the URL's transport rule (https://; plain http:// only to
// a loopback host or with `allow_insecure: true`, which leaves a warning), `tls` (ca_file,
// client_cert, client_key) and `auth` (bearer token from a file or the environment, or an
// OAuth2 client-credentials grant with a client secret or a SMART Backend Services signed
// assertion). Read once at start-up; secrets stay in files and the environment, never in YAML.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "engine/util/http_post.hpp"

namespace chartflow::handlers {

// Reads `allow_insecure`, `tls` and `auth` of the endpoint mapping `endpoint` (null: none) for
// `url` (already ${VAR}-expanded, not empty). `where` names the mapping in errors and warnings
// ("payors.default"). Throws std::invalid_argument naming the key ("payors.default.auth.
// token_file: cannot read ..."). Appends to `warnings` when allow_insecure lets plain http:// go
// to a non-loopback host.
util::HttpPostOptions outbound_options(const Json* endpoint, const std::string& url,
                                       const std::string& where, std::chrono::milliseconds timeout,
                                       std::vector<std::string>& warnings);

}  // namespace chartflow::handlers
