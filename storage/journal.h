#pragma once

// Journal: the change-log revision and audit entries that every mutation writes in its own
// transaction (so a change, its audit trail and its revision commit or vanish together).

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/request_context.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace fleetca::storage {

// A change to journal: `action` done by ctx.actor on the `keys` of `entity_type`.
struct JournalEntry {
  std::string action;       // e.g. "RegisterDevice"
  std::string entity_type;  // a change_log.entity_type, e.g. "device"
  std::vector<std::string> keys;
  bool deleted = false;     // change-log op: delete instead of upsert
  std::string details_json = "{}";  // audit details, a JSON object
  // Whether brokers and replicas must see the change (a change-log revision per key).
  // Certificate issuance, for one, is audited but not streamed.
  bool record_change = true;
};

// Journal appends one audit entry for the whole call (its target is the key when there is
// one, else empty: list the keys in details_json; chained later by the audit sequencer)
// and, with record_change, one change-log revision per key, inside tx. Returns the last
// revision, or 0 when no revision was appended (keys empty: nothing changed, nothing is
// journaled). The change log takes the log lock (held until tx ends): call Journal last.
// Throws libpqxx exceptions like any statement (mapped by ConnectionPool::Transact).
int64_t Journal(pqxx::transaction_base& tx, const RequestContext& ctx, const JournalEntry& entry);

// ChainAudit runs the audit sequencer once: chains up to `limit` unchained entries; returns
// how many (0 when another session holds the sequencer). Throws like any statement.
int ChainAudit(pqxx::transaction_base& tx, int limit);

// AuditActorJson: the caller's role, certificate serial and issuer, and address, as the
// JSON object every audit entry keeps under details.actor (empty fields left out).
std::string AuditActorJson(const RequestContext& ctx);

// PgTextArray encodes strings as a PostgreSQL text[] literal: {"a","b\"c"}.
std::string PgTextArray(const std::vector<std::string>& values);

}  // namespace fleetca::storage
