#include "cli/import.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cli.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "common/json.h"

namespace fleetca::cli {

namespace pb = google::protobuf;

ImportFormat ImportFormatFor(const std::string& format, const std::string& path) {
  const std::string f = absl::AsciiStrToLower(format);
  if (f == "csv") return ImportFormat::kCsv;
  if (f == "jsonl" || f == "ndjson" || f == "json") return ImportFormat::kJsonl;
  if (!f.empty()) throw UsageError("--format: '" + format + "' is not one of csv|jsonl");
  const std::string p = absl::AsciiStrToLower(path);
  if (absl::EndsWith(p, ".csv")) return ImportFormat::kCsv;
  if (absl::EndsWith(p, ".jsonl") || absl::EndsWith(p, ".ndjson") || absl::EndsWith(p, ".json")) {
    return ImportFormat::kJsonl;
  }
  throw UsageError("cannot tell the format of " + path +
                   " from its name: give --format csv or --format jsonl");
}

bool CsvTokenizer::Next(std::vector<std::string>* fields, int64_t* start_line) {
  std::streambuf* sb = in_.rdbuf();
  fields->clear();
  std::string field;
  bool in_quotes = false;
  bool quoted = false;  // the current field started with a quote
  bool any = false;     // the record has content
  *start_line = line_;
  constexpr int kEof = std::char_traits<char>::eof();
  while (true) {
    int c = sb->sbumpc();
    if (c == kEof) {
      if (in_quotes) error_ = absl::StrCat("line ", *start_line, ": unterminated quoted field");
      if (!any) return false;
      fields->push_back(std::move(field));
      return true;
    }
    ++bytes_;
    if (first_) {
      first_ = false;
      if (c == 0xEF && sb->sgetc() == 0xBB) {  // UTF-8 byte-order mark
        sb->sbumpc();
        if (sb->sgetc() == 0xBF) sb->sbumpc();
        bytes_ += 2;
        continue;
      }
    }
    const char ch = static_cast<char>(c);
    if (in_quotes) {
      if (ch == '"') {
        if (sb->sgetc() == '"') {
          sb->sbumpc();
          ++bytes_;
          field += '"';
        } else {
          in_quotes = false;
        }
      } else {
        if (ch == '\n') ++line_;
        field += ch;
      }
      continue;
    }
    if (ch == '"' && field.empty() && !quoted) {
      in_quotes = quoted = any = true;
    } else if (ch == ',') {
      fields->push_back(std::move(field));
      field.clear();
      quoted = false;
      any = true;
    } else if (ch == '\r' && sb->sgetc() == '\n') {
      continue;
    } else if (ch == '\n') {
      ++line_;
      if (!any) {  // a blank line
        *start_line = line_;
        continue;
      }
      fields->push_back(std::move(field));
      return true;
    } else {
      field += ch;
      any = true;
    }
  }
}

namespace {

enum class CsvColumn { kCommId, kDisplayName, kGroups, kStatus, kAttribute };

class CsvReader : public RowReader {
 public:
  explicit CsvReader(std::istream& in) : tokens_(in) {
    std::vector<std::string> header;
    int64_t line = 0;
    if (!tokens_.Next(&header, &line)) throw UsageError("the CSV input is empty (no header row)");
    std::set<std::string> seen;
    bool has_comm_id = false;
    for (std::string name : header) {
      name = std::string(absl::StripAsciiWhitespace(name));
      if (!seen.insert(name).second) throw UsageError("CSV header: column '" + name + "' twice");
      if (name == "comm_id") {
        columns_.push_back({CsvColumn::kCommId, ""});
        has_comm_id = true;
      } else if (name == "display_name") {
        columns_.push_back({CsvColumn::kDisplayName, ""});
      } else if (name == "groups") {
        columns_.push_back({CsvColumn::kGroups, ""});
      } else if (name == "status") {
        columns_.push_back({CsvColumn::kStatus, ""});
      } else if (absl::StartsWith(name, "attr.") && name.size() > 5) {
        columns_.push_back({CsvColumn::kAttribute, name.substr(5)});
      } else {
        throw UsageError("CSV header: unknown column '" + name +
                         "' (known: comm_id, display_name, groups, status, attr.<key>)");
      }
    }
    if (!has_comm_id) throw UsageError("CSV header: no comm_id column");
  }

  bool Next(ImportRow* row) override {
    std::vector<std::string> fields;
    int64_t line = 0;
    if (!tokens_.Next(&fields, &line)) return false;
    *row = ImportRow();
    row->line = line;
    if (!tokens_.error().empty()) row->error = tokens_.error();
    if (fields.size() != columns_.size()) {
      // Still take the comm-ID, to name the row in the result file.
      for (size_t i = 0; i < std::min(fields.size(), columns_.size()); ++i) {
        if (columns_[i].kind == CsvColumn::kCommId) row->device.set_comm_id(fields[i]);
      }
      row->error = absl::StrCat("line ", line, ": ", fields.size(), " fields, the header has ",
                                columns_.size());
      return true;
    }
    for (size_t i = 0; i < fields.size(); ++i) {
      const std::string& v = fields[i];
      switch (columns_[i].kind) {
        case CsvColumn::kCommId:
          row->device.set_comm_id(v);
          break;
        case CsvColumn::kDisplayName:
          row->device.set_display_name(v);
          break;
        case CsvColumn::kGroups:
          for (absl::string_view g : absl::StrSplit(v, ';', absl::SkipWhitespace())) {
            row->device.add_groups(std::string(absl::StripAsciiWhitespace(g)));
          }
          break;
        case CsvColumn::kStatus:
          if (!v.empty()) {
            try {
              row->device.set_status(static_cast<v1::DeviceStatus>(
                  ParseEnum(v1::DeviceStatus_descriptor(), v, "status")));
            } catch (const CliError& e) {
              row->error = absl::StrCat("line ", line, ": ", e.what());
            }
          }
          break;
        case CsvColumn::kAttribute:
          if (!v.empty()) (*row->device.mutable_attributes())[columns_[i].attribute] = v;
          break;
      }
    }
    return true;
  }

  uint64_t bytes_read() const override { return tokens_.bytes_read(); }

 private:
  struct Col {
    CsvColumn kind;
    std::string attribute;
  };
  CsvTokenizer tokens_;
  std::vector<Col> columns_;
};

class JsonlReader : public RowReader {
 public:
  explicit JsonlReader(std::istream& in) : in_(in) {}

  bool Next(ImportRow* row) override {
    std::string text;
    while (std::getline(in_, text)) {
      ++line_;
      bytes_ += text.size() + 1;
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (absl::StripAsciiWhitespace(text).empty()) continue;
      *row = ImportRow();
      row->line = line_;
      pb::util::JsonParseOptions options;
      options.ignore_unknown_fields = false;
      auto status = pb::util::JsonStringToMessage(text, &row->device, options);
      if (!status.ok()) {
        row->device.Clear();
        row->error =
            absl::StrCat("line ", line_, ": not a Device in JSON: ", std::string(status.message()));
      }
      return true;
    }
    return false;
  }

  uint64_t bytes_read() const override { return bytes_; }

 private:
  std::istream& in_;
  int64_t line_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace

std::unique_ptr<RowReader> NewCsvReader(std::istream& in) {
  return std::make_unique<CsvReader>(in);
}

std::unique_ptr<RowReader> NewJsonlReader(std::istream& in) {
  return std::make_unique<JsonlReader>(in);
}

Outcome OutcomeForCode(int grpc_code) {
  if (grpc_code == 0) return Outcome::kRegistered;
  if (grpc_code == 6) return Outcome::kExists;  // ALREADY_EXISTS
  return Outcome::kFailed;
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kRegistered:
      return "registered";
    case Outcome::kExists:
      return "exists";
    case Outcome::kFailed:
      return "failed";
  }
  return "failed";
}

std::string FormatResultLine(const ResultEntry& e) {
  std::string out = absl::StrCat("{\"line\":", e.line, ",\"comm_id\":");
  AppendJsonString(&out, e.comm_id);
  absl::StrAppend(&out, ",\"outcome\":\"", OutcomeName(e.outcome), "\",\"code\":\"",
                  StatusCodeName(e.code), "\",\"message\":");
  AppendJsonString(&out, e.message);
  out += "}\n";
  return out;
}

std::optional<ResultEntry> ParseResultLine(const std::string& line) {
  if (absl::StripAsciiWhitespace(line).empty()) return std::nullopt;
  pb::Struct s;
  if (!pb::util::JsonStringToMessage(line, &s).ok()) return std::nullopt;
  const auto& f = s.fields();
  auto line_it = f.find("line");
  auto id_it = f.find("comm_id");
  auto outcome_it = f.find("outcome");
  if (line_it == f.end() || id_it == f.end() || outcome_it == f.end() ||
      !line_it->second.has_number_value() || !id_it->second.has_string_value() ||
      !outcome_it->second.has_string_value()) {
    return std::nullopt;
  }
  ResultEntry e;
  const double line_number = line_it->second.number_value();
  // Outside int64 (or NaN) the cast would be undefined: not a line of ours.
  if (!(line_number > -9.2e18 && line_number < 9.2e18)) return std::nullopt;
  e.line = static_cast<int64_t>(line_number);
  e.comm_id = id_it->second.string_value();
  const std::string& outcome = outcome_it->second.string_value();
  if (outcome == "registered") {
    e.outcome = Outcome::kRegistered;
  } else if (outcome == "exists") {
    e.outcome = Outcome::kExists;
  } else if (outcome == "failed") {
    e.outcome = Outcome::kFailed;
  } else {
    return std::nullopt;
  }
  if (auto it = f.find("code"); it != f.end() && it->second.has_string_value()) {
    for (int c = 0; c <= 16; ++c) {
      if (StatusCodeName(c) == it->second.string_value()) e.code = c;
    }
  }
  if (auto it = f.find("message"); it != f.end() && it->second.has_string_value()) {
    e.message = it->second.string_value();
  }
  return e;
}

int64_t DoneSet::Load(std::istream& in) {
  int64_t n = 0;
  std::string text;
  while (std::getline(in, text)) {
    std::optional<ResultEntry> e = ParseResultLine(text);
    if (!e) continue;
    ++n;
    if (e->outcome == Outcome::kFailed) {
      done_.erase(e->line);
    } else {
      done_[e->line] = e->comm_id;
    }
  }
  return n;
}

bool DoneSet::Contains(int64_t line, const std::string& comm_id) const {
  auto it = done_.find(line);
  return it != done_.end() && it->second == comm_id;
}

std::string SummaryLine(const ImportSummary& s) {
  return absl::StrCat(s.rows, " rows: ", s.registered, " registered, ", s.exists, " exists, ",
                      s.failed, " failed, ", s.skipped, " skipped (done before)");
}

namespace {

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

void Count(ImportSummary* s, Outcome o) {
  switch (o) {
    case Outcome::kRegistered:
      ++s->registered;
      break;
    case Outcome::kExists:
      ++s->exists;
      break;
    case Outcome::kFailed:
      ++s->failed;
      break;
  }
}

}  // namespace

ImportSummary RunImport(RowReader& reader, const DoneSet& done, std::ostream& results,
                        const BatchFn& send, const ImportOptions& options) {
  ImportSummary summary;
  const int batch_size = std::max(1, options.batch_size);
  bool more = true;
  while (more) {
    if (options.stop != nullptr && *options.stop != 0) {
      summary.interrupted = true;
      break;
    }
    v1::BatchRegisterDevicesRequest request;
    std::vector<int64_t> lines;        // line of each item of the request
    std::vector<ResultEntry> entries;  // this batch's results, written together
    ImportRow row;
    while (request.devices_size() < batch_size) {
      if (!reader.Next(&row)) {
        more = false;
        break;
      }
      ++summary.rows;
      if (done.Contains(row.line, row.device.comm_id())) {
        ++summary.skipped;
        continue;
      }
      if (!row.error.empty()) {
        entries.push_back({row.line, row.device.comm_id(), Outcome::kFailed,
                           3 /* INVALID_ARGUMENT */, row.error});
        ++summary.failed;
        continue;
      }
      lines.push_back(row.line);
      *request.add_devices() = std::move(row.device);
    }
    if (request.devices_size() > 0) {
      v1::BatchRegisterDevicesResponse response;
      grpc::Status status;
      for (int attempt = 1;; ++attempt) {
        response.Clear();
        status = send(request, &response);
        if (status.ok() || !Retryable(status.error_code()) || attempt >= options.attempts) break;
        if (options.backoff) options.backoff(attempt);
      }
      if (!status.ok()) {
        // Nothing of this batch is recorded but the rows that could not be read: a re-run
        // sends the batch again.
        std::sort(entries.begin(), entries.end(),
                  [](const ResultEntry& a, const ResultEntry& b) { return a.line < b.line; });
        for (const ResultEntry& e : entries) results << FormatResultLine(e);
        results.flush();
        summary.error = status;
        return summary;
      }
      ++summary.batches;
      std::vector<bool> answered(lines.size(), false);
      for (const v1::BatchRegisterDeviceResult& r : response.results()) {
        if (r.index() < 0 || static_cast<size_t>(r.index()) >= lines.size()) continue;
        answered[r.index()] = true;
        const Outcome o = OutcomeForCode(r.code());
        entries.push_back(
            {lines[r.index()], request.devices(r.index()).comm_id(), o, r.code(), r.message()});
        Count(&summary, o);
      }
      for (size_t i = 0; i < lines.size(); ++i) {
        if (answered[i]) continue;
        entries.push_back({lines[i], request.devices(static_cast<int>(i)).comm_id(),
                           Outcome::kFailed, 2 /* UNKNOWN */, "no result for this row"});
        ++summary.failed;
      }
    }
    if (!entries.empty()) {
      std::sort(entries.begin(), entries.end(),
                [](const ResultEntry& a, const ResultEntry& b) { return a.line < b.line; });
      std::string block;
      for (const ResultEntry& e : entries) block += FormatResultLine(e);
      results << block;
      results.flush();
    }
    if (options.progress) options.progress(summary, reader.bytes_read());
  }
  return summary;
}

}  // namespace fleetca::cli
