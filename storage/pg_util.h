#pragma once

// Small conversions shared by the PostgreSQL stores.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pqxx {
class field;
class transaction_base;
}  // namespace pqxx

namespace fleetca::storage {

// Bytes travel as hex text: decode($n, 'hex') in, encode(col, 'hex') out.
std::string ToHex(const std::string& bytes);
absl::StatusOr<std::string> FromHex(const std::string& hex);

// Timestamps travel as microseconds since the epoch (bigint).
int64_t ToMicros(absl::Time t);
absl::Time FromMicros(int64_t micros);
std::optional<absl::Time> OptionalTime(const pqxx::field& f);  // NULL -> nullopt

// NullableParam passes an optional string as a statement parameter: nullptr (SQL NULL) when
// absent. The optional must outlive the statement.
const char* NullableParam(const std::optional<std::string>& value);

// Prepared names sql as a prepared statement on tx's connection (once per connection: the
// server prepares it at first use) and returns the name, for tx.exec_prepared on hot paths,
// where parsing and planning the statement text each time would cost more than running it.
const std::string& Prepared(pqxx::transaction_base& tx, const std::string& name, const char* sql);

// ByteaValue reads a bytea column as its bytes.
std::string ByteaValue(const pqxx::field& f);

// ParseTextArray reads a text[] column.
std::vector<std::string> ParseTextArray(const pqxx::field& f);

}  // namespace fleetca::storage
