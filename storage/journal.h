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
};

// Journal appends one change-log revision per key and one audit entry for the whole call
// (its target is the key when there is one, else empty: list the keys in details_json),
// inside tx, and returns the last revision (0 when keys is empty: nothing changed, nothing
// is journaled). Takes the log lock (held until tx ends): call it last.
// Throws libpqxx exceptions like any statement (mapped by ConnectionPool::Transact).
int64_t Journal(pqxx::transaction_base& tx, const RequestContext& ctx, const JournalEntry& entry);

// PgTextArray encodes strings as a PostgreSQL text[] literal: {"a","b\"c"}.
std::string PgTextArray(const std::vector<std::string>& values);

}  // namespace fleetca::storage
