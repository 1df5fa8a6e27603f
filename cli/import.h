#pragma once

// `fleetca device import`: reading devices from CSV or JSON lines one row at a time,
// sending them in batches through BatchRegisterDevices, and the per-row result file that
// lets an interrupted import resume (docs/cli.md, "Importing devices").

#include <grpcpp/support/status.h>

#include <csignal>
#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <unordered_map>
#include <vector>

#include "fleetca/v1/device_registry.pb.h"

namespace fleetca::cli {

// ImportRow: one data row of the input. `line` is the line where the row starts (1-based;
// in a CSV file the header is line 1). When `error` is set, the row could not be read into a
// Device: it is recorded as failed (INVALID_ARGUMENT) and not sent.
struct ImportRow {
  int64_t line = 0;
  v1::Device device;
  std::string error;
};

enum class ImportFormat { kCsv, kJsonl };

// ImportFormatFor: `format` ("csv", "jsonl"; "" to decide from the file name: .csv, or
// .jsonl/.ndjson/.json). Throws a usage CliError when neither says.
ImportFormat ImportFormatFor(const std::string& format, const std::string& path);

// RowReader: the rows of an input stream, one at a time (never the whole file).
class RowReader {
 public:
  virtual ~RowReader() = default;
  // Next: the next data row; false at the end of the input.
  virtual bool Next(ImportRow* row) = 0;
  // bytes_read: how far into the input the reader is (for a progress bar).
  virtual uint64_t bytes_read() const = 0;
};

// CsvTokenizer: RFC 4180 records: fields separated by commas, optionally in double quotes
// (inside which commas, newlines and doubled quotes "" are data); CRLF or LF; blank lines
// skipped; a UTF-8 byte-order mark at the start ignored.
class CsvTokenizer {
 public:
  explicit CsvTokenizer(std::istream& in) : in_(in) {}
  // Next: the next record's fields and the line it starts on; false at the end. An
  // unterminated quote at the end of the input sets error() (the record is still returned).
  bool Next(std::vector<std::string>* fields, int64_t* start_line);
  const std::string& error() const { return error_; }
  uint64_t bytes_read() const { return bytes_; }

 private:
  std::istream& in_;
  int64_t line_ = 1;
  uint64_t bytes_ = 0;
  bool first_ = true;
  std::string error_;
};

// NewCsvReader: a CSV file with a header row naming its columns: comm_id (required),
// display_name, groups (";"-separated), status (active, suspended, decommissioned) and
// attr.<key> for each attribute (an empty cell leaves the attribute out). Throws a usage
// CliError for a missing header, an unknown or repeated column, or no comm_id column.
std::unique_ptr<RowReader> NewCsvReader(std::istream& in);

// NewJsonlReader: one Device in protobuf JSON form per line ({"commId": "SN-1",
// "displayName": "...", "groups": ["a"], "attributes": {"site": "lyon"}}; snake_case names
// are accepted too); blank lines skipped.
std::unique_ptr<RowReader> NewJsonlReader(std::istream& in);

// Outcome of a row: registered (OK), exists (ALREADY_EXISTS: registered before, by an
// earlier run whose result was lost, or repeated earlier in the file) or failed.
enum class Outcome { kRegistered, kExists, kFailed };
Outcome OutcomeForCode(int grpc_code);
const char* OutcomeName(Outcome outcome);

// ResultEntry: one line of the result file, a JSON object:
// {"line":12,"comm_id":"SN-1","outcome":"registered","code":"OK","message":""}
struct ResultEntry {
  int64_t line = 0;
  std::string comm_id;
  Outcome outcome = Outcome::kFailed;
  int code = 0;
  std::string message;
};
std::string FormatResultLine(const ResultEntry& entry);  // with the final newline
// ParseResultLine: nullopt for a line that is not a result (a line torn by an interruption).
std::optional<ResultEntry> ParseResultLine(const std::string& line);

// DoneSet: the rows a result file records as done (registered or exists), by line and
// comm-ID; a later entry for the same line replaces an earlier one.
class DoneSet {
 public:
  // Load reads a result file; returns the number of result lines read.
  int64_t Load(std::istream& in);
  bool Contains(int64_t line, const std::string& comm_id) const;
  size_t size() const { return done_.size(); }

 private:
  std::unordered_map<int64_t, std::string> done_;
};

struct ImportSummary {
  int64_t rows = 0;        // data rows read from the input
  int64_t registered = 0;  // outcome registered in this run
  int64_t exists = 0;      // outcome exists in this run
  int64_t failed = 0;      // outcome failed in this run
  int64_t skipped = 0;     // recorded as done by an earlier run: not sent
  int64_t batches = 0;     // BatchRegisterDevices calls that succeeded
  bool interrupted = false;
  grpc::Status error;  // the call that failed for good (the import stopped there)
};

// SummaryLine: "10000 rows: 9990 registered, 5 exists, 5 failed, 0 skipped (done before)".
std::string SummaryLine(const ImportSummary& summary);

using BatchFn = std::function<grpc::Status(const v1::BatchRegisterDevicesRequest&,
                                           v1::BatchRegisterDevicesResponse*)>;

struct ImportOptions {
  int batch_size = 500;
  // Attempts of a batch whose call fails with UNAVAILABLE or DEADLINE_EXCEEDED (a retried
  // batch that had committed comes back ALREADY_EXISTS: counted as exists).
  int attempts = 4;
  std::function<void(int attempt)> backoff;  // sleeps before a retry (none when unset)
  // progress: called after each batch.
  std::function<void(const ImportSummary&, uint64_t bytes_read)> progress;
  // stop: checked between batches (SIGINT); the batch in flight completes and is recorded.
  const volatile std::sig_atomic_t* stop = nullptr;
};

// RunImport: reads every row, skips those `done` holds, sends the others `batch_size` at a
// time, and appends each batch's results to `results` (flushed after each batch: an
// interruption loses at most the batch in flight, whose rows come back ALREADY_EXISTS).
ImportSummary RunImport(RowReader& reader, const DoneSet& done, std::ostream& results,
                        const BatchFn& send, const ImportOptions& options);

}  // namespace fleetca::cli
