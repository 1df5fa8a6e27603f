#pragma once

// Structured logging: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-23T10:00:00.000000Z","level":"info","msg":"listening","address":"..."}
// Never pass key material, a KEK, a full CSR or a password as a field.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace fleetca {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// A log field: name and already-formatted value (written as a JSON string).
using LogField = std::pair<std::string, std::string>;

// ParseLogLevel accepts "debug", "info", "warning" (or "warn") and "error".
bool ParseLogLevel(absl::string_view text, LogLevel* level);

// SetMinLogLevel sets the level below which lines are dropped (default kInfo). Thread-safe.
void SetMinLogLevel(LogLevel level);

// LogSink receives the lines instead of stderr once set (SetLogSink): the mosquitto plugin
// hands them to the broker's log. It must be thread-safe; null restores stderr.
using LogSink = void (*)(LogLevel level, absl::string_view msg, const std::vector<LogField>& fields);
void SetLogSink(LogSink sink);

// Log writes one line if level is at or above the minimum. Thread-safe; one write(2) per line.
void Log(LogLevel level, absl::string_view msg, const std::vector<LogField>& fields = {});

inline void LogDebug(absl::string_view msg, const std::vector<LogField>& fields = {}) {
  Log(LogLevel::kDebug, msg, fields);
}
inline void LogInfo(absl::string_view msg, const std::vector<LogField>& fields = {}) {
  Log(LogLevel::kInfo, msg, fields);
}
inline void LogWarning(absl::string_view msg, const std::vector<LogField>& fields = {}) {
  Log(LogLevel::kWarning, msg, fields);
}
inline void LogError(absl::string_view msg, const std::vector<LogField>& fields = {}) {
  Log(LogLevel::kError, msg, fields);
}

}  // namespace fleetca
