#include "cli/output.h"

#include <gmock/gmock.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>

#include "cli/cli.h"
#include "fleetca/v1/broker_sync.pb.h"
#include "fleetca/v1/device_registry.pb.h"
#include "fleetca/v1/types.pb.h"

namespace fleetca::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(TableTest, AlignedColumnsNoTrailingSpaces) {
  Table t({"COMM-ID", "STATUS", "NAME"});
  t.AddRow({"SN-1", "ACTIVE", "first"});
  t.AddRow({"a-much-longer-id", "SUSPENDED", ""});
  t.AddRow({"x", "y", "multi\nline"});
  EXPECT_EQ(t.Render(),
            "COMM-ID           STATUS     NAME\n"
            "SN-1              ACTIVE     first\n"
            "a-much-longer-id  SUSPENDED\n"
            "x                 y          multi line\n");
}

TEST(TableTest, Utf8CountsCharactersNotBytes) {
  Table t({"A", "B"});
  t.AddRow({"été", "1"});
  t.AddRow({"abcd", "2"});
  EXPECT_EQ(t.Render(), "A     B\nété   1\nabcd  2\n");
}

TEST(EnumTest, ShortNamesAndParsing) {
  EXPECT_EQ(EnumShortName(v1::DeviceStatus_descriptor()->FindValueByNumber(2)), "SUSPENDED");
  EXPECT_EQ(EnumShortName(v1::KeyAlgorithm_descriptor()->FindValueByNumber(1)), "ECDSA_P256");
  EXPECT_EQ(ParseEnum(v1::DeviceStatus_descriptor(), "suspended", "--status"), 2);
  EXPECT_EQ(ParseEnum(v1::DeviceStatus_descriptor(), "DEVICE_STATUS_ACTIVE", "--status"), 1);
  EXPECT_EQ(ParseEnum(v1::KeyAlgorithm_descriptor(), "ecdsa-p384", "--k"), 2);
  EXPECT_EQ(ParseEnum(v1::IdentityRole_descriptor(), "mqtt-client", "--role"), 6);
  EXPECT_EQ(ParseEnum(v1::RevocationReason_descriptor(), "unspecified", "--reason", true), 0);
  try {
    ParseEnum(v1::DeviceStatus_descriptor(), "unspecified", "--status");
    FAIL();
  } catch (const CliError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_THAT(e.what(), HasSubstr("--status: 'unspecified' is not one of "
                                    "active|suspended|decommissioned"));
  }
}

TEST(DurationTest, ParseAndFormat) {
  EXPECT_EQ(ParseDuration("30s", "-").seconds(), 30);
  EXPECT_EQ(ParseDuration("90d", "-").seconds(), 90 * 86400);
  EXPECT_EQ(ParseDuration("1y", "-").seconds(), 365 * 86400);
  EXPECT_EQ(ParseDuration("1h30m", "-").seconds(), 5400);
  EXPECT_EQ(ParseDuration("3600", "-").seconds(), 3600);
  EXPECT_EQ(ParseDuration("1.5s", "-").nanos(), 500000000);
  EXPECT_THROW(ParseDuration("soon", "-"), CliError);
  EXPECT_THROW(ParseDuration("-5s", "-"), CliError);
  EXPECT_THROW(ParseDuration("", "-"), CliError);
  google::protobuf::Duration d;
  d.set_seconds(86400 * 2);
  EXPECT_EQ(FormatDuration(d), "2d");
  d.set_seconds(7200);
  EXPECT_EQ(FormatDuration(d), "2h");
  d.set_seconds(61);
  EXPECT_EQ(FormatDuration(d), "61s");
}

TEST(TimestampTest, ParseAndFormat) {
  auto t = ParseTimestamp("2025-01-02T03:04:05Z", "--since");
  EXPECT_EQ(t.seconds(), 1735787045);
  EXPECT_EQ(FormatTimestamp(t), "2025-01-02T03:04:05Z");
  EXPECT_EQ(ParseTimestamp("2025-01-02T04:04:05+01:00", "-").seconds(), 1735787045);
  EXPECT_EQ(FormatTimestamp(google::protobuf::Timestamp()), "");
  EXPECT_THROW(ParseTimestamp("yesterday", "--since"), CliError);
}

v1::Device SampleDevice() {
  v1::Device d;
  d.set_comm_id("SN-1");
  d.set_status(v1::DEVICE_STATUS_ACTIVE);
  d.add_groups("b");
  d.add_groups("a");
  (*d.mutable_attributes())["site"] = "lyon";
  (*d.mutable_attributes())["lot"] = "7";
  d.mutable_create_time()->set_seconds(1735787045);
  return d;
}

TEST(FieldTextTest, PathsEnumsMapsAndAlternatives) {
  const v1::Device d = SampleDevice();
  EXPECT_EQ(FieldText(d, "comm_id"), "SN-1");
  EXPECT_EQ(FieldText(d, "status"), "ACTIVE");
  EXPECT_EQ(FieldText(d, "groups"), "b,a");
  EXPECT_EQ(FieldText(d, "attributes"), "lot=7,site=lyon");
  EXPECT_EQ(FieldText(d, "create_time"), "2025-01-02T03:04:05Z");
  EXPECT_EQ(FieldText(d, "update_time"), "");
  EXPECT_EQ(FieldText(d, "display_name|comm_id"), "SN-1");
  v1::Broker b;
  EXPECT_EQ(FieldText(b, "sync.watching"), "");  // unset message on the path
  b.mutable_sync()->set_watching(true);
  EXPECT_EQ(FieldText(b, "sync.watching"), "yes");
  EXPECT_THROW(FieldText(d, "colour"), std::logic_error);
}

TEST(DescribeTest, SetFieldsAlignedPemLeftOut) {
  v1::Certificate c;
  c.set_serial("0a1b");
  c.set_kind(v1::CERTIFICATE_KIND_DEVICE);
  c.set_certificate_pem("-----BEGIN CERTIFICATE-----\n...\n");
  c.mutable_revocation()->set_reason(v1::REVOCATION_REASON_KEY_COMPROMISE);
  const std::string text = Describe(c);
  // Scalars are shown even at their default (enums, booleans); unset strings and
  // messages are not.
  EXPECT_EQ(text,
            "serial:                        0a1b\n"
            "kind:                          DEVICE\n"
            "status:                        UNSPECIFIED\n"
            "revocation.reason:             KEY_COMPROMISE\n"
            "revocation.from_imported_crl:  no\n"
            "external:                      no\n"
            "key_algorithm:                 UNSPECIFIED\n");
  EXPECT_THAT(text, Not(HasSubstr("BEGIN")));
  EXPECT_THAT(text, Not(HasSubstr("comm_id")));
}

TEST(RenderListTest, Columns) {
  v1::ListDevicesResponse list;
  *list.add_devices() = SampleDevice();
  list.add_devices()->set_comm_id("SN-2");
  EXPECT_EQ(RenderList(list, "devices", {{"COMM-ID", "comm_id"}, {"STATUS", "status"}}),
            "COMM-ID  STATUS\nSN-1     ACTIVE\nSN-2     UNSPECIFIED\n");
}

TEST(JsonTest, ProtobufMappingWithDefaults) {
  v1::Device d;
  d.set_comm_id("SN-1");
  const std::string json = ToJson(d);
  EXPECT_THAT(json, HasSubstr("\"commId\": \"SN-1\""));
  EXPECT_THAT(json, HasSubstr("\"status\": \"DEVICE_STATUS_UNSPECIFIED\""));
  EXPECT_EQ(json.back(), '\n');
}

// Flags beat the environment, which beats the config file.
TEST(SettingsTest, FlagsBeatEnvironmentBeatConfigFile) {
  const std::string path = ::testing::TempDir() + "/fleetca-cli-test.toml";
  {
    std::ofstream f(path);
    f << "# fleetca\naddress = \"config:1\"\ntimeout = \"9s\"\noutput = \"json\"\n"
         "insecure-plaintext = true\ncredential = \"/from/config.pem\"\n";
  }
  setenv("FLEETCA_ADDRESS", "env:2", 1);
  setenv("FLEETCA_TIMEOUT", "8s", 1);
  unsetenv("FLEETCA_OUTPUT");
  unsetenv("FLEETCA_CREDENTIAL");
  unsetenv("FLEETCA_INSECURE_PLAINTEXT");
  Cli cli;
  auto app = BuildApp(cli);
  std::vector<std::string> args = {"fleetca", "--config", path,  "--timeout",
                                   "7s",      "device",   "get", "SN-1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app->parse(static_cast<int>(argv.size()), argv.data());
  LoadConfigFile(*app, cli.settings, true);
  EXPECT_EQ(cli.settings.timeout, "7s");         // flag
  EXPECT_EQ(cli.settings.address, "env:2");      // environment
  EXPECT_EQ(cli.settings.output, "json");        // config file
  EXPECT_TRUE(cli.settings.insecure_plaintext);  // config file
  EXPECT_EQ(cli.settings.credential, "/from/config.pem");
  EXPECT_TRUE(static_cast<bool>(cli.action));
  unsetenv("FLEETCA_ADDRESS");
  unsetenv("FLEETCA_TIMEOUT");
}

TEST(SettingsTest, UnknownConfigKeyIsAUsageError) {
  const std::string path = ::testing::TempDir() + "/fleetca-cli-bad.toml";
  {
    std::ofstream f(path);
    f << "adress = \"x:1\"\n";
  }
  Cli cli;
  auto app = BuildApp(cli);
  std::vector<std::string> args = {"fleetca", "--config", path, "device", "get", "SN-1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app->parse(static_cast<int>(argv.size()), argv.data());
  try {
    LoadConfigFile(*app, cli.settings, true);
    FAIL();
  } catch (const CliError& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_THAT(e.what(), HasSubstr("unknown setting 'adress'"));
  }
}

}  // namespace
}  // namespace fleetca::cli
