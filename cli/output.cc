#include "cli/output.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <stdexcept>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "cli/cli.h"
#include "common/file_util.h"

namespace fleetca::cli {

namespace pb = google::protobuf;

namespace {

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return s;
}

// Width in terminal columns: UTF-8 continuation bytes take none.
size_t DisplayWidth(const std::string& s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// "DeviceStatus" -> "DEVICE_STATUS_".
std::string EnumPrefix(const pb::EnumDescriptor* type) {
  std::string out;
  const std::string& name = type->name();
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (i > 0 && absl::ascii_isupper(static_cast<unsigned char>(c)) &&
        !absl::ascii_isupper(static_cast<unsigned char>(name[i - 1]))) {
      out += '_';
    }
    out += absl::ascii_toupper(static_cast<unsigned char>(c));
  }
  return out + "_";
}

bool IsTimestamp(const pb::Descriptor* d) { return d->full_name() == "google.protobuf.Timestamp"; }
bool IsDuration(const pb::Descriptor* d) { return d->full_name() == "google.protobuf.Duration"; }

std::string ScalarText(const pb::Message& m, const pb::FieldDescriptor* f, int index) {
  const pb::Reflection* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrCat(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return absl::StrCat(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "yes" : "no";
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return EnumShortName(rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f));
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES)
        return absl::StrCat("<", s.size(), " bytes>");
      return s;
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
      const pb::Message& sub = rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f);
      const pb::Descriptor* d = sub.GetDescriptor();
      if (IsTimestamp(d)) {
        if (!rep && !r->HasField(m, f)) return "";
        return FormatTimestamp(static_cast<const pb::Timestamp&>(sub));
      }
      if (IsDuration(d)) {
        if (!rep && !r->HasField(m, f)) return "";
        return FormatDuration(static_cast<const pb::Duration&>(sub));
      }
      if (d->options().map_entry()) {
        return ScalarText(sub, d->field(0), 0) + "=" + ScalarText(sub, d->field(1), 0);
      }
      if (d->full_name() == "fleetca.v1.Principal") {  // compact: device/SN-1
        const std::string type = ScalarText(sub, d->field(0), 0);
        return absl::AsciiStrToLower(type) + "/" + ScalarText(sub, d->field(1), 0);
      }
      return OneLine(sub.ShortDebugString());
    }
  }
  return "";
}

std::string FieldValueText(const pb::Message& m, const pb::FieldDescriptor* f) {
  if (!f->is_repeated()) return ScalarText(m, f, 0);
  const int n = m.GetReflection()->FieldSize(m, f);
  std::vector<std::string> parts;
  parts.reserve(n);
  for (int i = 0; i < n; ++i) parts.push_back(ScalarText(m, f, i));
  if (f->is_map()) std::sort(parts.begin(), parts.end());
  return absl::StrJoin(parts, ",");
}

void DescribeInto(const pb::Message& m, const std::string& prefix,
                  std::vector<std::pair<std::string, std::string>>* out, bool* skipped_pem) {
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    const std::string name = prefix + f->name();
    if (f->is_repeated()) {
      if (r->FieldSize(m, f) == 0) continue;
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!r->HasField(m, f)) continue;
    } else if (f->containing_oneof() != nullptr) {
      if (!r->HasField(m, f)) continue;
    }
    const bool pem = f->name().size() > 4 && f->name().substr(f->name().size() - 4) == "_pem";
    if (pem || f->type() == pb::FieldDescriptor::TYPE_BYTES) {
      if (!FieldValueText(m, f).empty()) *skipped_pem = true;
      continue;
    }
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() &&
        !IsTimestamp(f->message_type()) && !IsDuration(f->message_type()) &&
        f->message_type()->full_name() != "fleetca.v1.Principal") {
      DescribeInto(r->GetMessage(m, f), name + ".", out, skipped_pem);
      continue;
    }
    if (f->is_repeated() && f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_map()) {
      const int n = r->FieldSize(m, f);
      for (int j = 0; j < n; ++j) {
        DescribeInto(r->GetRepeatedMessage(m, f, j), absl::StrCat(name, "[", j, "]."), out,
                     skipped_pem);
      }
      continue;
    }
    std::string value = FieldValueText(m, f);
    if (value.empty() && f->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) continue;
    out->emplace_back(name, OneLine(value));
  }
}

CliError FileError(const std::string& what, const std::string& message) {
  return CliError(kExitError, what + ": " + message);
}

}  // namespace

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (std::string& c : cells) c = OneLine(std::move(c));
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> width(headers_.size(), 0);
  for (size_t i = 0; i < headers_.size(); ++i) width[i] = DisplayWidth(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], DisplayWidth(row[i]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t i = 0; i < cells.size(); ++i) {
      l += cells[i];
      if (i + 1 < cells.size()) l.append(width[i] - DisplayWidth(cells[i]) + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l;
    out += '\n';
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
  return out;
}

std::string ToJson(const pb::Message& message) {
  pb::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  std::string out;
  auto status = pb::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) throw CliError(kExitError, "cannot print JSON: " + status.ToString());
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

std::string EnumShortName(const pb::EnumValueDescriptor* value) {
  if (value == nullptr) return "";
  const std::string prefix = EnumPrefix(value->type());
  const std::string& name = value->name();
  if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
    return name.substr(prefix.size());
  }
  return name;
}

int ParseEnum(const pb::EnumDescriptor* type, const std::string& text, const std::string& flag,
              bool allow_unspecified) {
  std::string wanted = absl::AsciiStrToUpper(text);
  std::replace(wanted.begin(), wanted.end(), '-', '_');
  const std::string prefix = EnumPrefix(type);
  for (int i = 0; i < type->value_count(); ++i) {
    const pb::EnumValueDescriptor* v = type->value(i);
    if (v->number() == 0 && !allow_unspecified) continue;
    if (v->name() == wanted || v->name() == prefix + wanted) return v->number();
  }
  throw UsageError(absl::StrCat(flag, ": '", text, "' is not one of ", EnumChoices(type)));
}

std::string EnumChoices(const pb::EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() == 0) continue;
    std::string n = absl::AsciiStrToLower(EnumShortName(type->value(i)));
    std::replace(n.begin(), n.end(), '_', '-');
    names.push_back(n);
  }
  return absl::StrJoin(names, "|");
}

std::string FormatTimestamp(const pb::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string FormatDuration(const pb::Duration& d) {
  const int64_t s = d.seconds();
  if (d.nanos() != 0) return absl::StrCat(s + d.nanos() / 1e9, "s");
  if (s != 0 && s % 86400 == 0) return absl::StrCat(s / 86400, "d");
  if (s != 0 && s % 3600 == 0) return absl::StrCat(s / 3600, "h");
  if (s != 0 && s % 60 == 0) return absl::StrCat(s / 60, "m");
  return absl::StrCat(s, "s");
}

pb::Duration ParseDuration(const std::string& text, const std::string& flag) {
  auto bad = [&] {
    return UsageError(
        absl::StrCat(flag, ": '", text, "' is not a duration (examples: 30s, 15m, 12h, 90d, 1y)"));
  };
  std::string s(absl::StripAsciiWhitespace(text));
  if (s.empty()) throw bad();
  int64_t plain = 0;
  absl::Duration total;
  if (absl::SimpleAtoi(s, &plain)) {
    total = absl::Seconds(plain);
  } else {
    // Days and years are ours; the rest is absl's ("1h30m", "1.5s").
    size_t pos = 0;
    std::string rest;
    while (pos < s.size()) {
      size_t end = pos;
      while (end < s.size() &&
             (absl::ascii_isdigit(static_cast<unsigned char>(s[end])) || s[end] == '.')) {
        ++end;
      }
      if (end == pos || end == s.size()) throw bad();
      size_t unit_end = end;
      while (unit_end < s.size() && absl::ascii_isalpha(static_cast<unsigned char>(s[unit_end]))) {
        ++unit_end;
      }
      const std::string number = s.substr(pos, end - pos);
      const std::string unit = s.substr(end, unit_end - end);
      double value = 0;
      if (!absl::SimpleAtod(number, &value)) throw bad();
      if (unit == "d") {
        total += absl::Seconds(value * 86400);
      } else if (unit == "y") {
        total += absl::Seconds(value * 365 * 86400);
      } else {
        absl::Duration part;
        if (!absl::ParseDuration(number + unit, &part)) throw bad();
        total += part;
      }
      pos = unit_end;
    }
  }
  if (total < absl::ZeroDuration()) throw bad();
  pb::Duration d;
  d.set_seconds(absl::IDivDuration(total, absl::Seconds(1), &total));
  d.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(total)));
  return d;
}

pb::Timestamp ParseTimestamp(const std::string& text, const std::string& flag) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    throw UsageError(absl::StrCat(flag, ": '", text,
                                  "' is not an RFC 3339 time (example: 2025-06-30T12:00:00Z)"));
  }
  pb::Timestamp ts;
  const int64_t ns = absl::ToUnixNanos(t);
  ts.set_seconds(absl::ToUnixSeconds(t));
  ts.set_nanos(static_cast<int32_t>(ns - absl::ToUnixSeconds(t) * 1000000000));
  return ts;
}

std::string FieldText(const pb::Message& message, const std::string& path) {
  if (path.find('|') != std::string::npos) {  // alternatives: the first that is set
    for (absl::string_view alt : absl::StrSplit(path, '|')) {
      std::string v = FieldText(message, std::string(alt));
      if (!v.empty()) return v;
    }
    return "";
  }
  const pb::Message* m = &message;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(parts[i]);
    if (f == nullptr) {
      throw std::logic_error("no field " + path + " in " + message.GetDescriptor()->full_name());
    }
    if (i + 1 == parts.size()) return FieldValueText(*m, f);
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated()) {
      throw std::logic_error("bad path " + path);
    }
    if (!m->GetReflection()->HasField(*m, f)) return "";
    m = &m->GetReflection()->GetMessage(*m, f);
  }
  return "";
}

std::string Describe(const pb::Message& message) {
  std::vector<std::pair<std::string, std::string>> rows;
  bool skipped = false;
  DescribeInto(message, "", &rows, &skipped);
  size_t width = 0;
  for (const auto& [k, v] : rows) width = std::max(width, k.size());
  std::string out;
  for (const auto& [k, v] : rows) {
    out += k;
    out += ':';
    out.append(width - k.size() + 2, ' ');
    out += v;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  if (rows.empty()) out = "ok\n";
  return out;
}

std::string RenderList(const pb::Message& list, const std::string& items_field,
                       const std::vector<Column>& columns) {
  std::vector<std::string> headers;
  headers.reserve(columns.size());
  for (const Column& c : columns) headers.push_back(c.header);
  Table table(std::move(headers));
  const pb::FieldDescriptor* f = list.GetDescriptor()->FindFieldByName(items_field);
  if (f == nullptr) throw std::logic_error("no field " + items_field);
  const pb::Reflection* r = list.GetReflection();
  const int n = r->FieldSize(list, f);
  for (int i = 0; i < n; ++i) {
    const pb::Message& item = r->GetRepeatedMessage(list, f, i);
    std::vector<std::string> row;
    row.reserve(columns.size());
    for (const Column& c : columns) row.push_back(FieldText(item, c.path));
    table.AddRow(std::move(row));
  }
  return table.Render();
}

void Show(const Cli& cli, const pb::Message& message, const std::string& pem,
          const std::string* der, const std::string& der_out) {
  switch (cli.Format()) {
    case OutputFormat::kJson:
      std::cout << ToJson(message);
      return;
    case OutputFormat::kPem:
      if (pem.empty()) throw UsageError("-o pem: this command has no PEM output");
      std::cout << pem;
      if (pem.back() != '\n') std::cout << '\n';
      return;
    case OutputFormat::kDer:
      if (der == nullptr) throw UsageError("-o der: this command has no DER output");
      if (der_out.empty()) throw UsageError("-o der writes binary: give --out FILE");
      WriteOutputFile(der_out, *der, 0644);
      return;
    case OutputFormat::kTable:
      std::cout << Describe(message);
      return;
  }
}

void ShowList(const Cli& cli, const pb::Message& list, const std::string& items_field,
              const std::vector<Column>& columns, const std::string& pem_field) {
  switch (cli.Format()) {
    case OutputFormat::kJson:
      std::cout << ToJson(list);
      return;
    case OutputFormat::kPem: {
      if (pem_field.empty()) throw UsageError("-o pem: this command has no PEM output");
      const pb::FieldDescriptor* f = list.GetDescriptor()->FindFieldByName(items_field);
      const pb::Reflection* r = list.GetReflection();
      for (int i = 0; i < r->FieldSize(list, f); ++i) {
        std::cout << FieldText(r->GetRepeatedMessage(list, f, i), pem_field);
      }
      return;
    }
    case OutputFormat::kDer:
      throw UsageError("-o der: this command has no DER output");
    case OutputFormat::kTable:
      std::cout << RenderList(list, items_field, columns);
      return;
  }
}

void WriteOutputFile(const std::string& path, const std::string& content, int mode) {
  absl::Status st = WriteFileAtomically(path, content, mode);
  if (!st.ok()) throw FileError(path, std::string(st.message()));
}

std::string ReadInputFile(const std::string& path) {
  if (path == "-") {
    std::string out;
    char buf[65536];
    while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
      out.append(buf, static_cast<size_t>(std::cin.gcount()));
    }
    return out;
  }
  auto content = ReadFileToString(path);
  if (!content.ok()) throw FileError(path, std::string(content.status().message()));
  return *std::move(content);
}

}  // namespace fleetca::cli
