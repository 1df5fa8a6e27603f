#pragma once

// Output of the fleetca CLI: tables for people, protobuf JSON for scripts, PEM where it
// fits; and the parsing of the values people type (enum names, durations, times).

#include <cstdint>
#include <string>
#include <vector>

namespace google::protobuf {
class Duration;
class EnumDescriptor;
class EnumValueDescriptor;
class Message;
class Timestamp;
}  // namespace google::protobuf

namespace fleetca::cli {

class Cli;

// Table: aligned columns separated by two spaces, headers first; the last column is not
// padded. Cells are single-line (control characters replaced by spaces).
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> cells);
  std::string Render() const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Column: a header and a field path into the row message ("status", "revocation.reason",
// "sync.watching"; see FieldText).
struct Column {
  std::string header;
  std::string path;
};

// ToJson: protobuf's JSON mapping (lowerCamelCase names, enums by name, fields with default
// values printed too), indented, with a final newline.
std::string ToJson(const google::protobuf::Message& message);

// EnumShortName: the value's name without its type's prefix: DEVICE_STATUS_ACTIVE -> ACTIVE.
std::string EnumShortName(const google::protobuf::EnumValueDescriptor* value);

// ParseEnum: "active", "ACTIVE", "device-status-active" or "DEVICE_STATUS_ACTIVE" -> its
// number; "-" and "_" are the same. Throws a usage CliError naming `flag` and the accepted
// values otherwise. `allow_unspecified`: whether the *_UNSPECIFIED value may be named.
int ParseEnum(const google::protobuf::EnumDescriptor* type, const std::string& text,
              const std::string& flag, bool allow_unspecified = false);

// EnumChoices: the accepted short names, lower case, joined with "|" (for help texts).
std::string EnumChoices(const google::protobuf::EnumDescriptor* type);

// FormatTimestamp: RFC 3339 in UTC to the second ("2025-01-02T03:04:05Z"); "" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& t);

// FormatDuration: "90d", "12h", "30m", "45s", or seconds with a fraction.
std::string FormatDuration(const google::protobuf::Duration& d);

// ParseDuration: "30s", "15m", "12h", "90d", "1y" (365 days), "1h30m", plain seconds "3600".
// Throws a usage CliError naming `flag`.
google::protobuf::Duration ParseDuration(const std::string& text, const std::string& flag);

// ParseTimestamp: RFC 3339 ("2025-01-02T03:04:05Z", offsets allowed). Throws a usage
// CliError naming `flag`.
google::protobuf::Timestamp ParseTimestamp(const std::string& text, const std::string& flag);

// FieldText: the value at `path` (dot-separated field names; "a|b": the first that is set)
// as text for a table: enums by short name, timestamps RFC 3339, booleans yes/no, repeated
// fields joined with ",", maps as k=v joined with ",". Empty when a message on the path is
// unset. Throws std::logic_error for a path that names no field (a programming error).
std::string FieldText(const google::protobuf::Message& message, const std::string& path);

// Describe: every set field as "name: value" lines (nested messages as name.sub), in
// declaration order, aligned; PEM fields (ending in _pem) and bytes fields are left out with
// a hint for -o pem / -o json.
std::string Describe(const google::protobuf::Message& message);

// RenderList: the table of the items in `items_field` of `list` with these columns.
std::string RenderList(const google::protobuf::Message& list, const std::string& items_field,
                       const std::vector<Column>& columns);

// Show: prints one result in the -o format: json (ToJson), pem (`pem`: a usage error when
// the command has none), table (Describe). `der`: the bytes -o der writes (with --out only).
void Show(const Cli& cli, const google::protobuf::Message& message, const std::string& pem = "",
          const std::string* der = nullptr, const std::string& der_out = "");

// ShowList: prints a merged list response: json (the whole response), table (RenderList),
// pem (the `pem_field` of every item, concatenated; a usage error when empty).
void ShowList(const Cli& cli, const google::protobuf::Message& list, const std::string& items_field,
              const std::vector<Column>& columns, const std::string& pem_field = "");

// WriteOutputFile: writes `content` atomically with `mode` (0600 for anything holding a
// private key); throws CliError (exit 1) naming the file.
void WriteOutputFile(const std::string& path, const std::string& content, int mode);

// ReadInputFile: a file's content ("-": standard input); throws CliError naming the file.
std::string ReadInputFile(const std::string& path);

}  // namespace fleetca::cli
