#pragma once

// Reading and writing small files that hold secrets (KEKs, credentials).

#include <string>

#include "absl/status/statusor.h"

namespace fleetca {

// ReadSecretFile returns a file's content without surrounding whitespace. NOT_FOUND or
// PERMISSION_DENIED naming the path (never the content); FAILED_PRECONDITION when the file
// is readable by group or others.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

}  // namespace fleetca
