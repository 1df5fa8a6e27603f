#pragma once

// Minimal JSON writing helpers for log lines and database parameters. fleetca only ever
// writes JSON here; reading JSON (from jsonb columns) goes through json.h's parser below,
// which accepts only the flat shapes fleetca itself stores.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fleetca {

// AppendJsonString appends s to out as a JSON string literal (with quotes), escaping
// quotes, backslashes and control characters. s must be valid UTF-8 (callers validate
// input first); bytes >= 0x80 are copied as they are.
void AppendJsonString(std::string* out, absl::string_view s);

// JsonString returns s as a JSON string literal.
std::string JsonString(absl::string_view s);

// JsonObject returns a flat JSON object of string values, keys in map order.
std::string JsonObject(const std::map<std::string, std::string>& m);

// JsonArray returns a JSON array of strings.
std::string JsonArray(const std::vector<std::string>& values);

// ParseFlatJsonObject parses a JSON object whose values are all strings (as written by
// JsonObject or by PostgreSQL's jsonb output). Returns INVALID_ARGUMENT otherwise.
absl::StatusOr<std::map<std::string, std::string>> ParseFlatJsonObject(absl::string_view json);

}  // namespace fleetca
