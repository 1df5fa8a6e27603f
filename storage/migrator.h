#pragma once

// Forward-only schema migrations, applied under a PostgreSQL advisory lock so that several
// replicas starting together apply each migration exactly once.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fleetca::storage {

class ConnectionPool;

// One numbered SQL file from migrations/.
struct Migration {
  int version = 0;   // from the file name: 0001_initial_schema.sql -> 1
  std::string name;  // the file name
  std::string sql;
};

struct MigrationReport {
  std::vector<int> applied;  // versions applied by this call
  int current_version = 0;   // highest version recorded after the call
};

// Migrate applies, in version order, each migration not yet recorded in schema_migrations,
// each in its own transaction together with its record. It holds a session advisory lock
// for the whole run: a second caller waits, then finds nothing left to do.
// Returns FAILED_PRECONDITION when an applied migration's checksum differs from the file
// (someone edited an applied migration), when the database has a version this binary does
// not know (a newer fleetca migrated it), or when versions are not strictly increasing;
// INTERNAL (naming the file) when a migration fails; UNAVAILABLE when the database cannot be
// reached.
absl::StatusOr<MigrationReport> Migrate(ConnectionPool& pool,
                                        const std::vector<Migration>& migrations);

}  // namespace fleetca::storage
