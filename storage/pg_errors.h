#pragma once

// The one place where libpqxx exceptions become absl::Status (shared STYLE.md "Errors").

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fleetca::storage {

// StatusFromException maps an exception thrown by libpqxx during `operation` to a status:
//   unique_violation (23505)                          -> ALREADY_EXISTS
//   foreign_key (23503), check (23514), not_null, exclusion, restrict -> FAILED_PRECONDITION
//   serialization_failure (40001), deadlock (40P01)   -> ABORTED
//   broken_connection, SQLSTATE 08*, 57P01-57P03, 53300, statement timeout (57014)
//                                                     -> UNAVAILABLE
//   in_doubt_error (connection lost during COMMIT)    -> UNAVAILABLE, "outcome unknown"
//   anything else                                     -> INTERNAL
// Messages never carry SQL or parameter values: the detail is logged with an incident id,
// and the caller sees the id. The status payload "fleetca.constraint" carries the violated
// constraint's name (when PostgreSQL gave one) so stores can word precise errors.
absl::Status StatusFromException(const std::exception& e, absl::string_view operation);

// ConstraintName returns the constraint recorded by StatusFromException, or "".
std::string ConstraintName(const absl::Status& status);

// IsConnectionLoss reports whether e means the connection is unusable (retry on a new one).
bool IsConnectionLoss(const std::exception& e);

}  // namespace fleetca::storage
