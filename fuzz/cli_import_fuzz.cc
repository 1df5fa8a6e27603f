// `fleetca device import` input and result files (cli/import.h): the CSV tokenizer and
// reader, the JSON-lines reader, and the result-file parser (ParseResultLine, DoneSet)
// that lets an interrupted import resume, on hostile bytes. A bad header is the usage
// CliError the command reports; anything else must never throw nor crash. A result line
// that parses must come back the same through FormatResultLine.

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/import.h"
#include "fuzz/fuzz_util.h"

namespace {

void ReadAll(fleetca::cli::RowReader& reader, size_t input_size) {
  fleetca::cli::ImportRow row;
  int64_t last_line = 0;
  for (int n = 0; n < 100000 && reader.Next(&row); ++n) {
    FUZZ_CHECK(row.line > last_line, "rows do not move forward");
    last_line = row.line;
    // +1: the JSON-lines reader counts a newline after a last line that has none (a
    // progress bar may show one byte too many; reported, harmless).
    FUZZ_CHECK(reader.bytes_read() <= input_size + 1, "read past the input");
    row = fleetca::cli::ImportRow();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetca;
  const std::string input(reinterpret_cast<const char*>(data), size);
  {
    std::istringstream in(input);
    cli::CsvTokenizer tokenizer(in);
    std::vector<std::string> fields;
    int64_t line = 0;
    while (tokenizer.Next(&fields, &line)) {
      FUZZ_CHECK(!fields.empty(), "an empty record");
    }
  }
  try {
    std::istringstream in(input);
    std::unique_ptr<cli::RowReader> reader = cli::NewCsvReader(in);
    ReadAll(*reader, size);
  } catch (const cli::CliError& e) {
    FUZZ_CHECK(e.exit_code() == 2, "a CSV header error that is not a usage error");
  }
  {
    std::istringstream in(input);
    std::unique_ptr<cli::RowReader> reader = cli::NewJsonlReader(in);
    ReadAll(*reader, size);
  }
  {
    std::istringstream in(input);
    cli::DoneSet done;
    done.Load(in);
    std::istringstream lines(input);
    std::string line;
    while (std::getline(lines, line)) {
      std::optional<cli::ResultEntry> e = cli::ParseResultLine(line);
      if (!e) continue;
      std::string formatted = cli::FormatResultLine(*e);
      FUZZ_CHECK(!formatted.empty() && formatted.back() == '\n', "result line without newline");
      formatted.pop_back();
      std::optional<cli::ResultEntry> again = cli::ParseResultLine(formatted);
      FUZZ_CHECK(again.has_value(), "a formatted result line does not parse");
      FUZZ_CHECK(again->line == e->line && again->comm_id == e->comm_id &&
                     again->outcome == e->outcome && again->code == e->code &&
                     again->message == e->message,
                 "a result line changes through FormatResultLine");
    }
  }
  return 0;
}
