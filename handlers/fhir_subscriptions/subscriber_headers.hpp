// A subscriber's channel.header lines ("Authorization: Bearer ...") are its credential: stored
// only sealed (util::SecretBox) in fhir_out_subscription.sealed_headers and opened by the
// deliverer for each call. Rows written before sealing existed keep plain lines in `headers`
// until their deliverer next runs and seals them.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "engine/handler.hpp"
#include "engine/util/secret_box.hpp"

namespace chartflow::handlers::fhir_subscriptions {

using SecretsPtr = std::shared_ptr<const util::SecretBox>;

// The sealed form of `lines` (a JSON array of strings) for the subscription with that id (bound
// to it: it opens for no other row); nullopt for no lines.
std::optional<std::string> seal_header_lines(const util::SecretBox& box, const Json& lines,
                                             const std::string& subscription_id);

// The header lines (JSON array text) of a subscription row that has `id`, `sealed_headers` and
// `headers` columns; plain lines found in `headers` are sealed in place in `sql`'s transaction.
// Throws util::SecretBoxError (no secret in its text) when the row was sealed under another key.
std::string open_header_lines(Sql& sql, const util::SecretBox& box, const Json& row);

// A box over a random key for a process that was given none (tests and tools that drive the
// handlers without a server): what it seals does not outlive the process.
SecretsPtr ephemeral_secrets();

}  // namespace chartflow::handlers::fhir_subscriptions
