// The statements on the inbound-subscription tables (schema/charts/0003_fhir_subscriptions.sql):
// what a notification's status said, which event numbers were received, and the gaps between.
// Each runs in the caller's transaction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/fhir_subscriptions/notification.hpp"

namespace chartflow::handlers::fhir_subscriptions {

struct Gap {
  std::int64_t from = 0;  // both inclusive
  std::int64_t to = 0;
};

// Records a notification pushed to us (last seen, its type, the counts it announces); a
// handshake sets where the count starts. Returns the epoch the notification's events belong to:
// a notification naming another of the server's Subscriptions, or a handshake whose count is
// below what was announced before, starts a new one (its numbers start again).
int record_status(Sql& sql, const std::string& name, const Notification& n);
// Takes event `number` of subscription `name`'s epoch: false when it was taken before.
bool claim_event(Sql& sql, const std::string& name, int epoch, std::int64_t number,
                 const std::string& via);
// The current epoch's numbers announced but not received, in order (at most `limit` ranges).
// With `advance`, first moves the contiguous mark past what arrived (locking the subscription's
// row).
std::vector<Gap> gaps(Sql& sql, const std::string& name, bool advance, std::size_t limit = 100);
// Remembers the outcome of asking for missed events ("" = it worked).
void record_recovery(Sql& sql, const std::string& name, const std::string& error);
// The subscription's row as $status shows it (null before the first contact).
Json state_json(Sql& sql, const std::string& name);
// Stores what fhir_fetch read for an event (again on a retry: the latest read wins).
void store_fetched(Sql& sql, const std::string& name, int epoch, std::int64_t number,
                   const std::string& reference, const std::string& url, const Json& content);

}  // namespace chartflow::handlers::fhir_subscriptions
