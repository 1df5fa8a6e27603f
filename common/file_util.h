#pragma once

// Reading and writing small files that hold secrets (KEKs, credentials).

#include <string>

#include "absl/status/statusor.h"

namespace fleetca {

// ReadSecretFile returns a file's content without surrounding whitespace. NOT_FOUND or
// PERMISSION_DENIED naming the path (never the content); FAILED_PRECONDITION when the file
// is readable by group or others.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// WriteFileAtomically writes content to path with `mode` (e.g. 0600) by a rename from a
// temporary file in the same directory: readers see the old file or the new one, never a
// part. The mode is set at creation, so a secret is never readable by others.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content, int mode);

}  // namespace fleetca
