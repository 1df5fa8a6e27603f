#pragma once

// Reading and writing small files: secrets (KEKs, credentials), and files another process
// reads (mosquitto's cafile, crlfile, acl_file; the plugin's policy cache) replaced so that
// it only ever sees the old content or the new one, whole, and durably.

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fleetca {

// ReadSecretFile returns a file's content without surrounding whitespace. NOT_FOUND or
// PERMISSION_DENIED naming the path (never the content); FAILED_PRECONDITION when the file
// is readable by group or others.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// WriteFileAtomically is ReplaceFileIfChanged without the answer (e.g. mode 0600 for a
// secret: the temporary file is created 0600, so a secret is never readable by others).
absl::Status WriteFileAtomically(const std::string& path, const std::string& content, int mode);

// ReadFileToString reads a whole file. NOT_FOUND when it does not exist; PERMISSION_DENIED
// or UNAVAILABLE (naming the path and errno's text) when it cannot be read.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// ReplaceFileIfChanged makes `path` hold `content` with permissions `mode`, and returns
// whether it wrote. When the file already holds exactly `content` with that mode, nothing is
// written (false). Otherwise (true):
// 1. a temporary file is created beside it (same directory, so the rename stays on one
//    file system), written, chmod'ed to `mode` (0644 by default: mosquitto reads it after
//    dropping its privileges) and fsync'ed;
// 2. it is renamed over `path` (atomic: a reader opens the old file or the new one);
// 3. the directory is fsync'ed, so that the rename survives a crash.
// On failure the temporary file is removed and `path` is left as it was; the status
// (PERMISSION_DENIED, NOT_FOUND for a missing directory, UNAVAILABLE otherwise) names the
// path, the step and errno's text.
absl::StatusOr<bool> ReplaceFileIfChanged(const std::string& path, absl::string_view content,
                                          mode_t mode = 0644);

// ReplaceFile is ReplaceFileIfChanged without the comparison: it always writes (for content
// that is known to differ, such as the plugin's policy cache, where reading the old file
// back would double the I/O).
absl::Status ReplaceFile(const std::string& path, absl::string_view content, mode_t mode);

}  // namespace fleetca
