#include "cli/import.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "cli/cli.h"
#include "cli/exit_codes.h"

namespace fleetca::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::vector<ImportRow> ReadAll(RowReader& reader) {
  std::vector<ImportRow> rows;
  ImportRow row;
  while (reader.Next(&row)) rows.push_back(row);
  return rows;
}

TEST(CsvTokenizerTest, QuotesCommasNewlinesAndLineNumbers) {
  std::istringstream in(
      "\xEF\xBB\xBF"
      "a,b,c\r\n"
      "1,\"two, too\",3\r\n"
      "\n"
      "\"multi\nline\",\"say \"\"hi\"\"\",\n"
      "last,,x");
  CsvTokenizer t(in);
  std::vector<std::string> f;
  int64_t line = 0;
  ASSERT_TRUE(t.Next(&f, &line));
  EXPECT_THAT(f, ElementsAre("a", "b", "c"));
  EXPECT_EQ(line, 1);
  ASSERT_TRUE(t.Next(&f, &line));
  EXPECT_THAT(f, ElementsAre("1", "two, too", "3"));
  EXPECT_EQ(line, 2);
  ASSERT_TRUE(t.Next(&f, &line));
  EXPECT_THAT(f, ElementsAre("multi\nline", "say \"hi\"", ""));
  EXPECT_EQ(line, 4);  // line 3 is blank
  ASSERT_TRUE(t.Next(&f, &line));
  EXPECT_THAT(f, ElementsAre("last", "", "x"));
  EXPECT_EQ(line, 6);
  EXPECT_FALSE(t.Next(&f, &line));
  EXPECT_TRUE(t.error().empty());
}

TEST(CsvTokenizerTest, UnterminatedQuoteIsAnError) {
  std::istringstream in("a\n\"open");
  CsvTokenizer t(in);
  std::vector<std::string> f;
  int64_t line = 0;
  ASSERT_TRUE(t.Next(&f, &line));
  ASSERT_TRUE(t.Next(&f, &line));
  EXPECT_THAT(t.error(), ::testing::HasSubstr("line 2: unterminated"));
}

TEST(CsvReaderTest, ColumnsToDevices) {
  std::istringstream in(
      "comm_id,display_name,groups,status,attr.site,attr.lot\n"
      "SN-1,first,line-1;line-2,,lyon,7\n"
      "SN-2,,,suspended,,\n"
      "SN-3,bad status,,sleeping,,\n"
      "SN-4,too,few\n");
  auto reader = NewCsvReader(in);
  auto rows = ReadAll(*reader);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].line, 2);
  EXPECT_EQ(rows[0].device.comm_id(), "SN-1");
  EXPECT_EQ(rows[0].device.display_name(), "first");
  EXPECT_THAT(rows[0].device.groups(), ElementsAre("line-1", "line-2"));
  EXPECT_THAT(rows[0].device.attributes(),
              UnorderedElementsAre(Pair("site", "lyon"), Pair("lot", "7")));
  EXPECT_TRUE(rows[0].error.empty());
  EXPECT_EQ(rows[1].device.status(), v1::DEVICE_STATUS_SUSPENDED);
  EXPECT_TRUE(rows[1].device.attributes().empty());  // empty cells leave attributes out
  EXPECT_THAT(rows[2].error, ::testing::HasSubstr("line 4"));
  EXPECT_THAT(rows[2].error, ::testing::HasSubstr("sleeping"));
  EXPECT_EQ(rows[3].device.comm_id(), "SN-4");
  EXPECT_THAT(rows[3].error, ::testing::HasSubstr("3 fields, the header has 6"));
}

TEST(CsvReaderTest, BadHeadersAreUsageErrors) {
  for (const char* text : {"", "display_name\nx\n", "comm_id,colour\n", "comm_id,comm_id\n"}) {
    std::istringstream in(text);
    try {
      NewCsvReader(in);
      ADD_FAILURE() << "accepted header " << text;
    } catch (const CliError& e) {
      EXPECT_EQ(e.exit_code(), kExitUsage) << text;
    }
  }
}

TEST(JsonlReaderTest, DevicesPerLineAndBadLines) {
  std::istringstream in(
      "{\"commId\": \"SN-1\", \"groups\": [\"a\"], \"attributes\": {\"site\": \"lyon\"}}\n"
      "\n"
      "{\"comm_id\": \"SN-2\", \"status\": \"DEVICE_STATUS_SUSPENDED\"}\r\n"
      "{not json}\n"
      "{\"commId\": \"SN-4\", \"colour\": \"red\"}\n");
  auto reader = NewJsonlReader(in);
  auto rows = ReadAll(*reader);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].line, 1);
  EXPECT_EQ(rows[0].device.comm_id(), "SN-1");
  EXPECT_EQ(rows[0].device.attributes().at("site"), "lyon");
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[1].device.status(), v1::DEVICE_STATUS_SUSPENDED);
  EXPECT_EQ(rows[2].line, 4);
  EXPECT_THAT(rows[2].error, ::testing::HasSubstr("line 4"));
  EXPECT_FALSE(rows[3].error.empty());  // unknown fields are refused
}

TEST(ImportFormatTest, FromFlagOrName) {
  EXPECT_EQ(ImportFormatFor("", "a.csv"), ImportFormat::kCsv);
  EXPECT_EQ(ImportFormatFor("", "A.JSONL"), ImportFormat::kJsonl);
  EXPECT_EQ(ImportFormatFor("", "a.ndjson"), ImportFormat::kJsonl);
  EXPECT_EQ(ImportFormatFor("jsonl", "a.csv"), ImportFormat::kJsonl);
  EXPECT_THROW(ImportFormatFor("", "a.txt"), CliError);
  EXPECT_THROW(ImportFormatFor("xml", "a.csv"), CliError);
}

TEST(ResultFileTest, LinesRoundTrip) {
  ResultEntry e{12, "SN-\"1\"", Outcome::kFailed, 3, "device.comm_id: bad\nthing"};
  const std::string line = FormatResultLine(e);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  auto parsed = ParseResultLine(line.substr(0, line.size() - 1));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->line, 12);
  EXPECT_EQ(parsed->comm_id, "SN-\"1\"");
  EXPECT_EQ(parsed->outcome, Outcome::kFailed);
  EXPECT_EQ(parsed->code, 3);
  EXPECT_EQ(parsed->message, e.message);
  EXPECT_THAT(line, ::testing::HasSubstr("\"code\":\"INVALID_ARGUMENT\""));
  EXPECT_FALSE(ParseResultLine("{\"line\":3,\"comm_id\":\"x\",\"outc").has_value());  // torn
  EXPECT_FALSE(ParseResultLine("").has_value());
}

TEST(ResultFileTest, DoneSetKeepsTheLastWordPerLine) {
  std::istringstream in(FormatResultLine({2, "A", Outcome::kRegistered, 0, ""}) +
                        FormatResultLine({3, "B", Outcome::kFailed, 3, "bad"}) +
                        FormatResultLine({4, "C", Outcome::kExists, 6, "exists"}) +
                        FormatResultLine({5, "D", Outcome::kRegistered, 0, ""}) +
                        FormatResultLine({5, "D", Outcome::kFailed, 14, "later failure"}) +
                        FormatResultLine({3, "B", Outcome::kRegistered, 0, ""}) +
                        "{\"line\":6,\"comm");
  DoneSet done;
  EXPECT_EQ(done.Load(in), 6);
  EXPECT_TRUE(done.Contains(2, "A"));
  EXPECT_TRUE(done.Contains(3, "B"));
  EXPECT_TRUE(done.Contains(4, "C"));
  EXPECT_FALSE(done.Contains(5, "D"));
  EXPECT_FALSE(done.Contains(2, "other"));  // the input changed under that line
  EXPECT_FALSE(done.Contains(6, "E"));
}

TEST(OutcomeTest, Codes) {
  EXPECT_EQ(OutcomeForCode(0), Outcome::kRegistered);
  EXPECT_EQ(OutcomeForCode(6), Outcome::kExists);
  EXPECT_EQ(OutcomeForCode(3), Outcome::kFailed);
  EXPECT_EQ(OutcomeForCode(14), Outcome::kFailed);
}

// A fake server: registers comm-IDs once, refuses those starting with "bad", and can fail
// whole calls.
struct FakeServer {
  std::set<std::string> registered;
  std::vector<int> batch_sizes;
  int fail_calls = 0;  // the next calls fail with this many UNAVAILABLE answers
  bool commit_then_fail = false;

  grpc::Status Send(const v1::BatchRegisterDevicesRequest& req,
                    v1::BatchRegisterDevicesResponse* resp) {
    if (fail_calls > 0 && !commit_then_fail) {
      --fail_calls;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
    }
    batch_sizes.push_back(req.devices_size());
    for (int i = 0; i < req.devices_size(); ++i) {
      auto* r = resp->add_results();
      r->set_index(i);
      const std::string& id = req.devices(i).comm_id();
      r->set_comm_id(id);
      if (id.rfind("bad", 0) == 0) {
        r->set_code(3);
        r->set_message("device.comm_id: bad");
      } else if (!registered.insert(id).second) {
        r->set_code(6);
        r->set_message("exists");
      }
    }
    if (commit_then_fail && fail_calls > 0) {
      --fail_calls;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "lost the answer");
    }
    return grpc::Status::OK;
  }
};

std::string Csv(int n, const std::set<int>& bad = {}) {
  std::string s = "comm_id,attr.i\n";
  for (int i = 0; i < n; ++i) {
    s += (bad.count(i) ? "bad-" : "dev-") + std::to_string(i) + "," + std::to_string(i) + "\n";
  }
  return s;
}

ImportSummary Import(FakeServer& server, const std::string& csv, std::string* results,
                     int batch_size, int max_batches = -1) {
  std::istringstream in(csv);
  auto reader = NewCsvReader(in);
  DoneSet done;
  std::istringstream previous(*results);
  done.Load(previous);
  std::ostringstream out;
  volatile std::sig_atomic_t stop = 0;
  ImportOptions options;
  options.batch_size = batch_size;
  options.stop = &stop;
  int batches = 0;
  options.progress = [&](const ImportSummary&, uint64_t) {
    if (++batches == max_batches) stop = 1;
  };
  ImportSummary s = RunImport(
      *reader, done, out,
      [&](const v1::BatchRegisterDevicesRequest& q, v1::BatchRegisterDevicesResponse* r) {
        return server.Send(q, r);
      },
      options);
  *results += out.str();
  return s;
}

TEST(RunImportTest, BatchesAndResults) {
  FakeServer server;
  std::string results;
  ImportSummary s = Import(server, Csv(25, {3, 17}), &results, 10);
  EXPECT_EQ(s.rows, 25);
  EXPECT_EQ(s.registered, 23);
  EXPECT_EQ(s.failed, 2);
  EXPECT_EQ(s.exists, 0);
  EXPECT_EQ(s.skipped, 0);
  EXPECT_EQ(s.batches, 3);
  EXPECT_THAT(server.batch_sizes, ElementsAre(10, 10, 5));
  std::istringstream lines(results);
  std::string text;
  std::vector<ResultEntry> entries;
  while (std::getline(lines, text)) entries.push_back(*ParseResultLine(text));
  ASSERT_EQ(entries.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(entries[i].line, i + 2);  // header is line 1
  EXPECT_EQ(entries[3].outcome, Outcome::kFailed);
  EXPECT_EQ(entries[3].comm_id, "bad-3");
  EXPECT_EQ(SummaryLine(s), "25 rows: 23 registered, 0 exists, 2 failed, 0 skipped (done before)");
}

TEST(RunImportTest, InterruptedThenResumedSkipsDoneRowsAndRetriesFailures) {
  FakeServer server;
  std::string results;
  ImportSummary first = Import(server, Csv(50, {7}), &results, 10, /*max_batches=*/2);
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.rows, 20);
  EXPECT_EQ(first.registered + first.failed, 20);

  ImportSummary second = Import(server, Csv(50, {7}), &results, 10);
  EXPECT_FALSE(second.interrupted);
  EXPECT_EQ(second.rows, 50);
  EXPECT_EQ(second.skipped, 19);  // done before
  EXPECT_EQ(second.failed, 1);    // bad-7, retried, still bad
  EXPECT_EQ(second.registered, 30);
  EXPECT_EQ(server.registered.size(), 49u);
}

TEST(RunImportTest, ALostResultComesBackAsExists) {
  FakeServer server;
  std::string results;
  Import(server, Csv(30), &results, 10);
  // The last batch committed, but its results never reached the file.
  std::istringstream all(results);
  std::string kept, text;
  for (int i = 0; i < 20 && std::getline(all, text); ++i) kept += text + "\n";
  kept += "{\"line\":22,\"comm_id\":\"dev-";  // and the interruption tore a line
  std::string resumed = kept + "\n";
  ImportSummary s = Import(server, Csv(30), &resumed, 10);
  EXPECT_EQ(s.skipped, 20);
  EXPECT_EQ(s.exists, 10);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.registered, 0);
}

TEST(RunImportTest, RetriesUnavailableThenGivesUp) {
  FakeServer server;
  server.fail_calls = 2;
  std::string results;
  ImportSummary s = Import(server, Csv(5), &results, 10);
  EXPECT_TRUE(s.error.ok());
  EXPECT_EQ(s.registered, 5);

  FakeServer down;
  down.fail_calls = 100;
  std::string none;
  ImportSummary d = Import(down, Csv(5), &none, 10);
  EXPECT_EQ(d.error.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(d.registered, 0);
  EXPECT_TRUE(none.empty());  // nothing recorded: a re-run sends the batch again
}

TEST(RunImportTest, ACommittedBatchRetriedCountsAsExists) {
  FakeServer server;
  server.fail_calls = 1;
  server.commit_then_fail = true;  // the first call commits, then its answer is lost
  std::string results;
  ImportSummary s = Import(server, Csv(5), &results, 10);
  EXPECT_TRUE(s.error.ok());
  EXPECT_EQ(s.exists, 5);
  EXPECT_EQ(s.failed, 0);
}

TEST(ExitCodeTest, OnePerClass) {
  EXPECT_EQ(ExitCodeFor(0), 0);
  EXPECT_EQ(ExitCodeFor(3), kExitUsage);
  EXPECT_EQ(ExitCodeFor(11), kExitUsage);
  EXPECT_EQ(ExitCodeFor(5), 3);
  EXPECT_EQ(ExitCodeFor(6), 4);
  EXPECT_EQ(ExitCodeFor(9), 4);
  EXPECT_EQ(ExitCodeFor(10), 4);
  EXPECT_EQ(ExitCodeFor(7), 5);
  EXPECT_EQ(ExitCodeFor(16), 5);
  EXPECT_EQ(ExitCodeFor(14), 6);
  EXPECT_EQ(ExitCodeFor(4), 6);
  EXPECT_EQ(ExitCodeFor(8), 6);
  EXPECT_EQ(ExitCodeFor(12), kExitUnimplemented);
  EXPECT_EQ(ExitCodeFor(13), 1);
  EXPECT_EQ(ExitCodeFor(2), 1);
  EXPECT_EQ(ExitCodeFor(99), 1);
  EXPECT_EQ(StatusCodeName(5), "NOT_FOUND");
  EXPECT_EQ(StatusCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(42), "CODE_42");
}

TEST(CheckTest, MessageAndCode) {
  try {
    Cli::Check(grpc::Status(grpc::StatusCode::NOT_FOUND, "device SN-1 not found"));
    FAIL();
  } catch (const CliError& e) {
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_STREQ(e.what(), "NOT_FOUND: device SN-1 not found");
  }
  EXPECT_NO_THROW(Cli::Check(grpc::Status::OK));
}

}  // namespace
}  // namespace fleetca::cli
