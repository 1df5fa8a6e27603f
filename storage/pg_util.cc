#include "storage/pg_util.h"

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"

namespace fleetca::storage {

std::string ToHex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

absl::StatusOr<std::string> FromHex(const std::string& hex) {
  if (hex.size() % 2 != 0 ||
      hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return absl::InternalError("malformed hex from the database");
  }
  return absl::HexStringToBytes(hex);
}

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t micros) { return absl::FromUnixMicros(micros); }

std::optional<absl::Time> OptionalTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return FromMicros(f.as<int64_t>());
}

const std::string& Prepared(pqxx::transaction_base& tx, const std::string& name, const char* sql) {
  tx.conn().prepare(name, sql);  // a no-op once registered with the same text
  return name;
}

const char* NullableParam(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

std::string ByteaValue(const pqxx::field& f) {
  const pqxx::binarystring b(f);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::vector<std::string> ParseTextArray(const pqxx::field& f) {
  std::vector<std::string> out;
  pqxx::array_parser parser = f.as_array();
  while (true) {
    auto [junction, value] = parser.get_next();
    if (junction == pqxx::array_parser::done) break;
    if (junction == pqxx::array_parser::string_value) out.push_back(std::move(value));
  }
  return out;
}

}  // namespace fleetca::storage
